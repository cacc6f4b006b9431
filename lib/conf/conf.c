/*
 * conf - loading mailgw.conf against the parameter table (conf_params.c)
 * and the accessors every daemon uses (DESIGN §6, reference §1).
 *
 * Interface: conf_load(), conf_free(), conf_str/int/bool/list/is_set(),
 * conf_group_count/name/index(), conf_group_str/int/bool/list/is_set/
 * template(), conf_param_find/lookup() (conf.h).
 *
 * Groups: a [mailgw.group:NAME] section keeps its own values of the
 * CONF_GROUP parameters of [mailgw.policy] (checked like the policy's);
 * the conf_group_* accessors fall back to [mailgw.policy].  Senders and
 * Recipients (CONF_GROUP_ONLY) are an error in [mailgw.policy]; a group
 * with neither is a warning.  CONF_TEMPLATE values (paths relative to the
 * config file's directory) are compiled with lib/template at load: a
 * template that is set but missing or does not compile is an error
 * "FILE:LINE: NAME: TEMPLATE:LINE: why", so check and reload refuse it.
 *
 * Syntax: "[section]" headers ([smtpgw.X] = [mailgw.X]); "Name = value"
 * lines (blanks around '=' ignored; no comments after a value, so values
 * may hold '#' and ';'); lines starting with '#' or ';' are comments.  A
 * parameter may appear once, except lists: each line adds items (and "a, b"
 * adds two for CONF_SPLIT lists); "Name =" sets a list to empty.  A list
 * value "file:/abs/path" adds the lines of that file.
 *
 * Diagnostics, one per line into the caller's buffer:
 *   "FILE:LINE: NAME: value 0 out of range 1..1024"               (error)
 *   "FILE:LINE: Hostname: repeated (first at line 3); only lists may repeat"
 *   "FILE: missing required parameter [mailgw.network] Hostname"  (error)
 *   "FILE:LINE: warning: unknown parameter [mailgw.limits] Foo"   (warning)
 *   "FILE:LINE: warning: unknown section [foo]"                   (warning)
 * conf_load returns NULL when there was any error, never half a config.
 *
 * Security: the file is read with hard limits (conf_file.c); nothing in
 * it is executed; bad input is a diagnostic, never a crash or log_fatal.
 */
#include "conf/conf_impl.h"
#include "template/template.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct conf_value {
    bool set;
    bool seen;          /* given in the file, maybe with a bad value */
    unsigned line;
    char *text;         /* scalar as written (enum: canonical word) */
    char *eff;          /* conf_str() when not text: absolute path, joined list */
    long long num;
    char **raw;         /* list entries as written ("file:/p" kept) */
    size_t nraw;
    char **items;       /* list items, file: expanded, NULL-terminated */
    size_t nitems;
    struct template *tpl;   /* CONF_TEMPLATE: compiled, NULL = built-in */
};

/* A [mailgw.group:NAME] section: values of the CONF_GROUP parameters it
 * sets, indexed like conf_params (only [mailgw.policy] entries used). */
struct conf_group {
    char *name;
    unsigned line;
    struct conf_value *v;
};

struct conf {
    char *path;
    struct conf_value *v;
    struct conf_group *groups;
    size_t ngroups;
};

enum conf_section_kind { SEC_NONE, SEC_KNOWN, SEC_GROUP, SEC_UNKNOWN };

struct conf_parse {
    struct conf *c;
    struct buf *diag;
    const char *file;
    unsigned errors;
    enum conf_section_kind kind;
    size_t group;       /* SEC_GROUP: index in c->groups */
    char section[256];
};

static const char *const conf_status_words[] = {
    "disinfected", "infected", "suspicious", "protected", "corrupted", "error", "filtered",
    "all", "none", NULL,
};

/* Sections that exist but whose parameters other modules have not entered
 * in the table yet. */
static const char *const conf_known_sections[] = {
    "mailgw.ave", "mailgw.policy", "updater.path", "updater.options", "updater.report",
    "path", "locale", NULL,
};

const struct conf_param *conf_param_find(const char *section, const char *name)
{
    for (size_t i = 0; i < conf_nparams; i++) {
        if (strcmp(conf_params[i].name, name) == 0 && strcmp(conf_params[i].section, section) == 0)
            return &conf_params[i];
    }
    return NULL;
}

const struct conf_param *conf_param_lookup(const char *spec)
{
    const struct conf_param *found = NULL;
    const char *dot = strrchr(spec, '.');
    if (dot) {
        char sec[256];
        size_t n = (size_t)(dot - spec);
        if (n >= sizeof sec)
            return NULL;
        memcpy(sec, spec, n);
        sec[n] = 0;
        if (strncmp(sec, "smtpgw.", 7) == 0)
            memcpy(sec, "mailgw", 6);
        return conf_param_find(sec, dot + 1);
    }
    for (size_t i = 0; i < conf_nparams; i++) {
        if (strcmp(conf_params[i].name, spec) == 0) {
            if (found)
                return NULL;
            found = &conf_params[i];
        }
    }
    return found;
}

static bool conf_section_known(const char *section)
{
    for (size_t i = 0; conf_known_sections[i]; i++) {
        if (strcmp(conf_known_sections[i], section) == 0)
            return true;
    }
    for (size_t i = 0; i < conf_nparams; i++) {
        if (strcmp(conf_params[i].section, section) == 0)
            return true;
    }
    return false;
}

static struct conf_value *conf_value_of(const struct conf *c, const struct conf_param *p)
{
    return &c->v[p - conf_params];
}

static void conf_list_add(struct conf_value *v, const char *item)
{
    v->items = xreallocarray(v->items, v->nitems + 2, sizeof *v->items);
    v->items[v->nitems++] = xstrdup(item);
    v->items[v->nitems] = NULL;
}

static void conf_list_add_raw(struct conf_value *v, const char *raw)
{
    v->raw = xreallocarray(v->raw, v->nraw + 1, sizeof *v->raw);
    v->raw[v->nraw++] = xstrdup(raw);
}

/* Check one list item found at where:line; 0 or -1 (reported). */
static int conf_item_check(struct conf_parse *ps, const struct conf_param *p, const char *item,
                           const char *where, unsigned line)
{
    struct buf err = BUF_INIT;
    int rc = conf_syntax_check(p, item, where, line, &err, ps->diag);
    if (rc == 0 && (p->flags & CONF_STATUSLIST)) {
        rc = -1;
        for (size_t i = 0; conf_status_words[i] && rc < 0; i++)
            rc = strcasecmp(item, conf_status_words[i]) == 0 ? 0 : -1;
        if (rc < 0)
            buf_printf(&err, "invalid status '%s' (allowed: disinfected, infected, suspicious, "
                       "protected, corrupted, error, filtered, all, none)", item);
    }
    if (rc < 0) {
        if (err.len)
            conf_diag(ps->diag, where, line, p->name, "%s", err.data);
        ps->errors++;
    }
    buf_free(&err);
    return rc;
}

static void conf_list_file_piece(struct conf_parse *ps, const struct conf_param *p,
                                 struct conf_value *v, const char *path, unsigned line)
{
    char **items;
    unsigned *lines;
    if (path[0] != '/') {
        conf_diag(ps->diag, ps->file, line, p->name, "list file 'file:%s' needs an absolute path",
                  path);
        ps->errors++;
        return;
    }
    long n = conf_list_file_at(path, ps->file, line, p->name, &items, &lines, ps->diag);
    if (n < 0) {
        ps->errors++;
        return;
    }
    for (long i = 0; i < n; i++) {
        if (conf_item_check(ps, p, items[i], path, lines[i]) == 0)
            conf_list_add(v, items[i]);
    }
    conf_list_file_free(items);
    free(lines);
}

static void conf_list_piece(struct conf_parse *ps, const struct conf_param *p,
                            struct conf_value *v, const char *piece, unsigned line)
{
    if (strncmp(piece, "file:", 5) == 0) {
        conf_list_add_raw(v, piece);
        conf_list_file_piece(ps, p, v, piece + 5, line);
        return;
    }
    if (conf_item_check(ps, p, piece, ps->file, line) == 0) {
        conf_list_add_raw(v, piece);
        conf_list_add(v, piece);
    }
}

static void conf_set_list(struct conf_parse *ps, const struct conf_param *p,
                          struct conf_value *v, char *value, unsigned line)
{
    if (!v->set)
        v->line = line;
    v->set = true;
    if (*value == 0)
        return;
    if (!(p->flags & CONF_SPLIT)) {
        conf_list_piece(ps, p, v, value, line);
        return;
    }
    char *save = NULL;
    for (char *piece = strtok_r(value, ",", &save); piece; piece = strtok_r(NULL, ",", &save)) {
        piece = conf_trim(piece);
        if (*piece)
            conf_list_piece(ps, p, v, piece, line);
    }
}

static char *conf_abs_path(const char *text);

/* A template path: relative to the directory of the config file. */
static char *conf_confdir_path(const char *text, const char *confpath)
{
    const char *slash = confpath ? strrchr(confpath, '/') : NULL;
    if (*text == 0 || *text == '/')
        return NULL;
    if (slash == NULL)
        return conf_abs_path(text);
    char *dir = xstrndup(confpath, (size_t)(slash - confpath));
    char *r = dir[0] == '/' ? xasprintf("%s/%s", dir, text) : NULL;
    if (r == NULL) {
        char *rel = xasprintf("%s/%s", dir, text);
        r = conf_abs_path(rel);
        free(rel);
    }
    free(dir);
    return r;
}

static char *conf_abs_path(const char *text)
{
    char cwd[4096];
    if (*text == 0 || *text == '/' || getcwd(cwd, sizeof cwd) == NULL)
        return NULL;
    return xasprintf("%s/%s", cwd, text);
}

/* Parse a scalar (from the file or a default) into v; -1 with err set.
 * confpath: the config file (CONF_TEMPLATE paths are relative to it). */
static int conf_scalar_init(const struct conf_param *p, struct conf_value *v, const char *text,
                            const char *where, unsigned line, struct buf *err, struct buf *diag,
                            const char *confpath)
{
    char *canon = NULL;
    if (p->type == CONF_STR) {
        if (*text == 0 && (p->flags & CONF_REQUIRED)) {
            buf_append_str(err, "empty value for a required parameter");
            return -1;
        }
        if (*text && conf_syntax_check(p, text, where, line, err, diag) < 0)
            return -1;
    } else if (conf_value_parse(p, text, &v->num, &canon, err) < 0) {
        return -1;
    }
    v->text = canon ? canon : xstrdup(text);
    if (p->flags & CONF_PATH)
        v->eff = conf_abs_path(text);
    else if (p->flags & CONF_TEMPLATE)
        v->eff = conf_confdir_path(text, confpath);
    return 0;
}

static void conf_set_scalar(struct conf_parse *ps, const struct conf_param *p,
                            struct conf_value *v, const char *value, unsigned line)
{
    if (v->set) {
        conf_diag(ps->diag, ps->file, line, p->name,
                  "repeated (first at line %u); only list parameters may repeat", v->line);
        ps->errors++;
        return;
    }
    struct buf err = BUF_INIT;
    v->seen = true;
    if (conf_scalar_init(p, v, value, ps->file, line, &err, ps->diag, ps->file) < 0) {
        if (err.len)
            conf_diag(ps->diag, ps->file, line, p->name, "%s", err.data);
        ps->errors++;
    } else {
        v->set = true;
        v->line = line;
    }
    buf_free(&err);
}

static void conf_unknown_param(struct conf_parse *ps, const char *name, unsigned line)
{
    const struct conf_param *near = NULL;
    for (size_t i = 0; i < conf_nparams && near == NULL; i++) {
        if (strcasecmp(conf_params[i].name, name) == 0)
            near = &conf_params[i];
    }
    if (near)
        conf_warn(ps->diag, ps->file, line, NULL, "unknown parameter [%s] %s (did you mean [%s] %s?)",
                  ps->section, name, near->section, near->name);
    else
        conf_warn(ps->diag, ps->file, line, NULL, "unknown parameter [%s] %s", ps->section, name);
}

/* A group section: only CONF_GROUP parameters of [mailgw.policy], stored
 * in the group's own values (validated like the policy's). */
static void conf_group_param(struct conf_parse *ps, char *name, char *value, unsigned line)
{
    const struct conf_param *p = conf_param_find("mailgw.policy", name);
    if (p == NULL || !(p->flags & CONF_GROUP)) {
        conf_unknown_param(ps, name, line);
        return;
    }
    struct conf_value *v = &ps->c->groups[ps->group].v[p - conf_params];
    if (p->type == CONF_LIST)
        conf_set_list(ps, p, v, value, line);
    else
        conf_set_scalar(ps, p, v, value, line);
}

static void conf_param_line(struct conf_parse *ps, char *line, unsigned lineno)
{
    char *eq = strchr(line, '=');
    if (eq == NULL) {
        conf_diag(ps->diag, ps->file, lineno, NULL, "syntax error: expected Name=value or [section]");
        ps->errors++;
        return;
    }
    *eq = 0;
    char *name = conf_trim(line), *value = conf_trim(eq + 1);
    if (*name == 0) {
        conf_diag(ps->diag, ps->file, lineno, NULL, "syntax error: no parameter name before '='");
        ps->errors++;
    } else if (ps->kind == SEC_NONE) {
        conf_diag(ps->diag, ps->file, lineno, name, "parameter outside any [section]");
        ps->errors++;
    } else if (ps->kind == SEC_GROUP) {
        conf_group_param(ps, name, value, lineno);
    } else if (ps->kind == SEC_KNOWN) {
        const struct conf_param *p = conf_param_find(ps->section, name);
        if (p == NULL)
            conf_unknown_param(ps, name, lineno);
        else if (p->flags & CONF_GROUP_ONLY) {
            conf_diag(ps->diag, ps->file, lineno, name,
                      "allowed only in [mailgw.group:NAME] sections");
            ps->errors++;
        } else if (p->type == CONF_LIST)
            conf_set_list(ps, p, conf_value_of(ps->c, p), value, lineno);
        else
            conf_set_scalar(ps, p, conf_value_of(ps->c, p), value, lineno);
    }
}

static bool conf_group_name_valid(const char *s)
{
    if (*s == 0)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!(ch >= 0x80 || (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
              strchr("_.-@", ch)))
            return false;
    }
    return true;
}

/* Index of the group (a repeated section continues the first one). */
static size_t conf_group_add(struct conf *c, const char *name, unsigned line)
{
    for (size_t i = 0; i < c->ngroups; i++) {
        if (strcmp(c->groups[i].name, name) == 0)
            return i;
    }
    c->groups = xreallocarray(c->groups, c->ngroups + 1, sizeof *c->groups);
    struct conf_group *g = &c->groups[c->ngroups];
    g->name = xstrdup(name);
    g->line = line;
    g->v = xcalloc(conf_nparams, sizeof *g->v);
    return c->ngroups++;
}

static void conf_section_line(struct conf_parse *ps, char *line, unsigned lineno)
{
    size_t n = strlen(line);
    if (line[n - 1] != ']') {
        conf_diag(ps->diag, ps->file, lineno, NULL, "syntax error: section header without ']'");
        ps->errors++;
        ps->kind = SEC_UNKNOWN;
        return;
    }
    line[n - 1] = 0;
    char *name = conf_trim(line + 1);
    const char *rest = strncmp(name, "smtpgw.", 7) == 0 ? name + 7 : NULL;
    if (rest)
        snprintf(ps->section, sizeof ps->section, "mailgw.%s", rest);
    else
        snprintf(ps->section, sizeof ps->section, "%s", name);
    if (strncmp(ps->section, "mailgw.group:", 13) == 0) {
        char *group = conf_trim(ps->section + 13);
        if (!conf_group_name_valid(group)) {
            conf_diag(ps->diag, ps->file, lineno, NULL, "invalid group name '%s'", group);
            ps->errors++;
            ps->kind = SEC_UNKNOWN;
            return;
        }
        ps->group = conf_group_add(ps->c, group, lineno);
        ps->kind = SEC_GROUP;
    } else if (conf_section_known(ps->section)) {
        ps->kind = SEC_KNOWN;
    } else {
        conf_warn(ps->diag, ps->file, lineno, NULL, "unknown section [%s]", ps->section);
        ps->kind = SEC_UNKNOWN;
    }
}

static void conf_default_list(const struct conf_param *p, struct conf_value *v)
{
    if (p->def == NULL || *p->def == 0)
        return;
    char *copy = xstrdup(p->def), *save = NULL;
    const char *sep = (p->flags & CONF_SPLIT) ? "," : "";
    for (char *it = strtok_r(copy, sep, &save); it; it = strtok_r(NULL, sep, &save)) {
        it = conf_trim(it);
        conf_list_add_raw(v, it);
        conf_list_add(v, it);
    }
    free(copy);
}

static void conf_join_list(struct conf_value *v)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < v->nitems; i++) {
        if (i)
            buf_append_str(&b, ", ");
        buf_append_str(&b, v->items[i]);
    }
    v->eff = b.data ? b.data : xstrdup("");
}

/* Defaults for what the file did not set; a table default that does not
 * parse is a programming error (the unit test checks them all). */
static void conf_apply_defaults(struct conf *c)
{
    for (size_t i = 0; i < conf_nparams; i++) {
        const struct conf_param *p = &conf_params[i];
        struct conf_value *v = &c->v[i];
        if (p->type == CONF_LIST) {
            if (!v->set)
                conf_default_list(p, v);
            conf_join_list(v);
            continue;
        }
        if (v->set)
            continue;
        struct buf err = BUF_INIT;
        if (conf_scalar_init(p, v, p->def ? p->def : "", "(default)", 0, &err, NULL, c->path) < 0) {
            if (p->def)
                log_fatal("conf: default of [%s] %s: %s", p->section, p->name, err.data);
            v->text = xstrdup("");
        }
        buf_free(&err);
    }
}

static void conf_check_required(struct conf_parse *ps)
{
    for (size_t i = 0; i < conf_nparams; i++) {
        const struct conf_param *p = &conf_params[i];
        const struct conf_value *v = &ps->c->v[i];
        if (!(p->flags & CONF_REQUIRED))
            continue;
        if (v->set && p->type == CONF_LIST && v->nitems == 0) {
            conf_diag(ps->diag, ps->file, v->line, p->name, "empty list for a required parameter");
            ps->errors++;
        } else if (!v->set && !v->seen) {
            conf_diag(ps->diag, ps->file, 0, NULL, "missing required parameter [%s] %s", p->section,
                      p->name);
            ps->errors++;
        }
    }
}

/* Rules between parameters (reference §1.8). */
static void conf_check_cross(struct conf_parse *ps)
{
    const struct conf *c = ps->c;
    long long lo = conf_int(c, "mailgw.timeouts", "MinimalBackoffTime");
    long long hi = conf_int(c, "mailgw.timeouts", "MaximalBackoffTime");
    long long ttl = conf_int(c, "mailgw.resolve", "UnreachableTTL");
    const struct conf_param *pmin = conf_param_find("mailgw.timeouts", "MinimalBackoffTime");
    const struct conf_param *pmax = conf_param_find("mailgw.timeouts", "MaximalBackoffTime");
    const struct conf_param *pttl = conf_param_find("mailgw.resolve", "UnreachableTTL");
    if (lo > hi && conf_value_of(c, pmin)->set) {
        conf_diag(ps->diag, ps->file, conf_value_of(c, pmin)->line, pmin->name,
                  "%llds is above MaximalBackoffTime %llds", lo, hi);
        ps->errors++;
    } else if (lo > hi) {
        conf_diag(ps->diag, ps->file, conf_value_of(c, pmax)->line, pmax->name,
                  "%llds is below MinimalBackoffTime %llds", hi, lo);
        ps->errors++;
    }
    if (ttl >= lo)
        conf_warn(ps->diag, ps->file, conf_value_of(c, pttl)->line, pttl->name,
                  "%llds is not below MinimalBackoffTime %llds: retries would find hosts "
                  "still marked unreachable", ttl, lo);
}

/* Groups: lists joined for conf_group_str; a group without Senders and
 * Recipients matches no message (reference §1.13 wants one of them). */
static void conf_finish_groups(struct conf_parse *ps)
{
    const struct conf_param *snd = conf_param_find("mailgw.policy", "Senders");
    const struct conf_param *rcp = conf_param_find("mailgw.policy", "Recipients");
    for (size_t g = 0; g < ps->c->ngroups; g++) {
        struct conf_group *gr = &ps->c->groups[g];
        for (size_t i = 0; i < conf_nparams; i++) {
            if (gr->v[i].set && conf_params[i].type == CONF_LIST)
                conf_join_list(&gr->v[i]);
        }
        if (snd && rcp && !gr->v[snd - conf_params].set && !gr->v[rcp - conf_params].set)
            conf_warn(ps->diag, ps->file, gr->line, NULL,
                      "group %s has neither Senders nor Recipients: it matches no message",
                      gr->name);
    }
}

/* Compile one CONF_TEMPLATE value; a default whose file is absent stays
 * NULL (built-in text). */
static void conf_template_load(struct conf_parse *ps, const struct conf_param *p,
                               struct conf_value *v)
{
    const char *path = v->eff ? v->eff : v->text;
    struct buf err = BUF_INIT;
    if (path == NULL || *path == 0 || (!v->set && access(path, F_OK) < 0 && errno == ENOENT))
        return;
    v->tpl = template_load(path, &err);
    if (v->tpl == NULL) {
        const char *line = err.data ? err.data : "cannot load the template";
        while (*line) {
            const char *nl = strchr(line, '\n');
            int len = nl ? (int)(nl - line) : (int)strlen(line);
            conf_diag(ps->diag, ps->file, v->line, p->name, "%.*s", len, line);
            line += nl ? len + 1 : len;
        }
        ps->errors++;
    }
    buf_free(&err);
}

static void conf_load_templates(struct conf_parse *ps)
{
    for (size_t i = 0; i < conf_nparams; i++) {
        if (!(conf_params[i].flags & CONF_TEMPLATE))
            continue;
        conf_template_load(ps, &conf_params[i], &ps->c->v[i]);
        for (size_t g = 0; g < ps->c->ngroups; g++) {
            if (ps->c->groups[g].v[i].set)
                conf_template_load(ps, &conf_params[i], &ps->c->groups[g].v[i]);
        }
    }
}

static void conf_parse_lines(struct conf_parse *ps, struct conf_reader *r)
{
    char *line;
    while ((line = conf_reader_next(r, ps->diag)) != NULL) {
        if (*line == 0 || *line == '#' || *line == ';')
            continue;
        if (*line == '[')
            conf_section_line(ps, line, r->lineno);
        else if (ps->kind != SEC_UNKNOWN)
            conf_param_line(ps, line, r->lineno);
    }
    ps->errors += r->errors;
}

struct conf *conf_load(const char *path, struct buf *diag)
{
    struct conf_reader r;
    if (conf_reader_open(&r, path, diag) < 0)
        return NULL;
    struct conf *c = xcalloc(1, sizeof *c);
    c->path = xstrdup(path);
    c->v = xcalloc(conf_nparams, sizeof *c->v);
    struct conf_parse ps = { .c = c, .diag = diag, .file = path, .kind = SEC_NONE };
    conf_parse_lines(&ps, &r);
    conf_reader_close(&r);
    conf_check_required(&ps);
    conf_apply_defaults(c);
    conf_finish_groups(&ps);
    if (ps.errors == 0)
        conf_check_cross(&ps);
    if (ps.errors == 0)
        conf_load_templates(&ps);
    if (ps.errors) {
        conf_free(c);
        return NULL;
    }
    return c;
}

static void conf_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void conf_values_free(struct conf_value *vals)
{
    for (size_t i = 0; i < conf_nparams; i++) {
        struct conf_value *v = &vals[i];
        free(v->text);
        free(v->eff);
        conf_strv_free(v->raw, v->nraw);
        conf_strv_free(v->items, v->nitems);
        template_free(v->tpl);
    }
    free(vals);
}

void conf_free(struct conf *c)
{
    if (c == NULL)
        return;
    conf_values_free(c->v);
    for (size_t g = 0; g < c->ngroups; g++) {
        conf_values_free(c->groups[g].v);
        free(c->groups[g].name);
    }
    free(c->groups);
    free(c->path);
    free(c);
}

const char *conf_file(const struct conf *c)
{
    return c->path;
}

static const struct conf_param *conf_must_find(const char *section, const char *name)
{
    const struct conf_param *p = conf_param_find(section, name);
    if (p == NULL)
        log_fatal("conf: no parameter [%s] %s in the table", section, name);
    return p;
}

const char *conf_str(const struct conf *c, const char *section, const char *name)
{
    const struct conf_value *v = conf_value_of(c, conf_must_find(section, name));
    if (v->eff)
        return v->eff;
    return v->text ? v->text : "";
}

long long conf_int(const struct conf *c, const char *section, const char *name)
{
    const struct conf_param *p = conf_must_find(section, name);
    if (p->type == CONF_STR || p->type == CONF_LIST)
        log_fatal("conf: [%s] %s is not a number", section, name);
    return conf_value_of(c, p)->num;
}

bool conf_bool(const struct conf *c, const char *section, const char *name)
{
    const struct conf_param *p = conf_must_find(section, name);
    if (p->type != CONF_BOOL)
        log_fatal("conf: [%s] %s is not a boolean", section, name);
    return conf_value_of(c, p)->num != 0;
}

size_t conf_list(const struct conf *c, const char *section, const char *name,
                 const char *const **items)
{
    static const char *const empty[] = { NULL };
    const struct conf_param *p = conf_must_find(section, name);
    if (p->type != CONF_LIST)
        log_fatal("conf: [%s] %s is not a list", section, name);
    const struct conf_value *v = conf_value_of(c, p);
    if (items)
        *items = v->items ? (const char *const *)v->items : empty;
    return v->nitems;
}

bool conf_is_set(const struct conf *c, const char *section, const char *name)
{
    return conf_value_of(c, conf_must_find(section, name))->set;
}

size_t conf_group_count(const struct conf *c)
{
    return c->ngroups;
}

const char *conf_group_name(const struct conf *c, size_t i)
{
    return i < c->ngroups ? c->groups[i].name : NULL;
}

int conf_group_index(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->ngroups; i++) {
        if (strcmp(c->groups[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}

/* The value a group sees: its own when set, else the policy's. */
static const struct conf_value *conf_group_value(const struct conf *c, int group,
                                                 const char *name, const struct conf_param **pp)
{
    static const struct conf_value none = { 0 };
    const struct conf_param *p = conf_must_find("mailgw.policy", name);
    if (!(p->flags & CONF_GROUP))
        log_fatal("conf: [mailgw.policy] %s cannot be set per group", name);
    if (group < -1 || (group >= 0 && (size_t)group >= c->ngroups))
        log_fatal("conf: group index %d out of range", group);
    if (pp)
        *pp = p;
    if (group >= 0 && c->groups[group].v[p - conf_params].set)
        return &c->groups[group].v[p - conf_params];
    if (p->flags & CONF_GROUP_ONLY)
        return &none;
    return conf_value_of(c, p);
}

const char *conf_group_str(const struct conf *c, int group, const char *name)
{
    const struct conf_value *v = conf_group_value(c, group, name, NULL);
    if (v->eff)
        return v->eff;
    return v->text ? v->text : "";
}

long long conf_group_int(const struct conf *c, int group, const char *name)
{
    const struct conf_param *p;
    const struct conf_value *v = conf_group_value(c, group, name, &p);
    if (p->type == CONF_STR || p->type == CONF_LIST)
        log_fatal("conf: [mailgw.policy] %s is not a number", name);
    return v->num;
}

bool conf_group_bool(const struct conf *c, int group, const char *name)
{
    const struct conf_param *p;
    const struct conf_value *v = conf_group_value(c, group, name, &p);
    if (p->type != CONF_BOOL)
        log_fatal("conf: [mailgw.policy] %s is not a boolean", name);
    return v->num != 0;
}

size_t conf_group_list(const struct conf *c, int group, const char *name,
                       const char *const **items)
{
    static const char *const empty[] = { NULL };
    const struct conf_param *p;
    const struct conf_value *v = conf_group_value(c, group, name, &p);
    if (p->type != CONF_LIST)
        log_fatal("conf: [mailgw.policy] %s is not a list", name);
    if (items)
        *items = v->items ? (const char *const *)v->items : empty;
    return v->nitems;
}

bool conf_group_is_set(const struct conf *c, int group, const char *name)
{
    const struct conf_param *p = conf_must_find("mailgw.policy", name);
    if (group < 0)
        return conf_value_of(c, p)->set;
    if ((size_t)group >= c->ngroups)
        log_fatal("conf: group index %d out of range", group);
    return c->groups[group].v[p - conf_params].set;
}

const struct template *conf_group_template(const struct conf *c, int group, const char *name)
{
    const struct conf_param *p;
    const struct conf_value *v = conf_group_value(c, group, name, &p);
    if (!(p->flags & CONF_TEMPLATE))
        log_fatal("conf: [mailgw.policy] %s is not a template", name);
    return v->tpl;
}

/* conf_print: "[mailgw.group:NAME]" sections with what each one sets. */
void conf_print_groups(const struct conf *c, FILE *out)
{
    for (size_t g = 0; g < c->ngroups; g++) {
        fprintf(out, "\n[mailgw.group:%s]\n", c->groups[g].name);
        for (size_t i = 0; i < conf_nparams; i++) {
            const struct conf_value *v = &c->groups[g].v[i];
            if (!v->set)
                continue;
            if (conf_params[i].type != CONF_LIST)
                fprintf(out, "%s = %s\n", conf_params[i].name, v->text ? v->text : "");
            else if (v->nraw == 0)
                fprintf(out, "%s =\n", conf_params[i].name);
            for (size_t k = 0; k < v->nraw; k++)
                fprintf(out, "%s = %s\n", conf_params[i].name, v->raw[k]);
        }
    }
}

const char *const *conf_raw_entries(const struct conf *c, const struct conf_param *p, size_t *n)
{
    const struct conf_value *v = conf_value_of(c, p);
    *n = v->nraw;
    return (const char *const *)v->raw;
}

const char *conf_raw_text(const struct conf *c, const struct conf_param *p)
{
    const struct conf_value *v = conf_value_of(c, p);
    return v->text ? v->text : "";
}
