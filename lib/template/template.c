/*
 * template - compiles and expands the template language of template.h
 * (notifications, placeholder and disclaimer texts; mailgw-templates(5)).
 *
 * Interface: template_compile(), template_load(), template_free(),
 * template_name(), template_vars_init(), template_vars_set(),
 * template_expand(), template_header_safe(), template_macro_names().
 *
 * A template is compiled once into a flat list of nodes: TEXT (a slice of
 * the source), MACRO (an index into the macro table), FOREACH (with the
 * index of its END) and END.  A line whose first character is '#' is a
 * comment and produces nothing.  Expansion walks the nodes; a FOREACH
 * node repeats the nodes up to its END once per list item.
 *
 * Diagnostics: "NAME:LINE: what" lines appended to the caller's buffer;
 * compilation stops at the first error.
 *
 * Security: values are appended to the output with buf_append and the
 * walk continues with the next node: no value is ever parsed.  Template
 * size is bounded (TEMPLATE_MAX_SIZE); expansion size is bounded by the
 * template size times the values and list lengths the caller supplies.
 */
#include "template/template.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/mem.h"

#define TOKEN_MAX 64

enum scope { SCOPE_GLOBAL, SCOPE_OBJECT, SCOPE_RECIPIENT, SCOPE_FIXED };

/* Macros past the settable ones: list fields and fixed texts. */
enum {
    TM_OBJECT_NAME = TEMPLATE_NMACROS,
    TM_OBJECT_TYPE,
    TM_OBJECT_STATUS,
    TM_OBJECT_VIRUS,
    TM_OBJECT_ACTION,
    TM_RECIPIENT_ADDR,
    TM_CRLF,
    TM_TAB,
    TM_HASH,
    TM_COUNT,
};

static const struct macro_def {
    const char *name;
    enum scope scope;
} macros[TM_COUNT] = {
    [TEMPLATE_SENDER] = { "SENDER", SCOPE_GLOBAL },
    [TEMPLATE_RECIPIENTS] = { "RECIPIENTS", SCOPE_GLOBAL },
    [TEMPLATE_RECIPIENT] = { "RECIPIENT", SCOPE_GLOBAL },
    [TEMPLATE_CLIENT_IP] = { "CLIENT_IP", SCOPE_GLOBAL },
    [TEMPLATE_CLIENT_NAME] = { "CLIENT_NAME", SCOPE_GLOBAL },
    [TEMPLATE_HELO] = { "HELO", SCOPE_GLOBAL },
    [TEMPLATE_FROM] = { "FROM", SCOPE_GLOBAL },
    [TEMPLATE_TO] = { "TO", SCOPE_GLOBAL },
    [TEMPLATE_SUBJECT] = { "SUBJECT", SCOPE_GLOBAL },
    [TEMPLATE_MESSAGE_ID] = { "MESSAGE_ID", SCOPE_GLOBAL },
    [TEMPLATE_STATUS] = { "STATUS", SCOPE_GLOBAL },
    [TEMPLATE_VIRUS_NAMES] = { "VIRUS_NAMES", SCOPE_GLOBAL },
    [TEMPLATE_ACTIONS] = { "ACTIONS", SCOPE_GLOBAL },
    [TEMPLATE_GROUP] = { "GROUP", SCOPE_GLOBAL },
    [TEMPLATE_QUEUE_ID] = { "QUEUE_ID", SCOPE_GLOBAL },
    [TEMPLATE_QUARANTINE_ID] = { "QUARANTINE_ID", SCOPE_GLOBAL },
    [TEMPLATE_DATE] = { "DATE", SCOPE_GLOBAL },
    [TEMPLATE_ARRIVAL_DATE] = { "ARRIVAL_DATE", SCOPE_GLOBAL },
    [TEMPLATE_SIZE] = { "SIZE", SCOPE_GLOBAL },
    [TEMPLATE_HOSTNAME] = { "HOSTNAME", SCOPE_GLOBAL },
    [TEMPLATE_POSTMASTER] = { "POSTMASTER", SCOPE_GLOBAL },
    [TEMPLATE_ADMIN] = { "ADMIN", SCOPE_GLOBAL },
    [TEMPLATE_NOTIFY_FROM] = { "NOTIFY_FROM", SCOPE_GLOBAL },
    [TEMPLATE_REASON] = { "REASON", SCOPE_GLOBAL },
    [TEMPLATE_PRODUCT] = { "PRODUCT", SCOPE_GLOBAL },
    [TM_OBJECT_NAME] = { "OBJECT_NAME", SCOPE_OBJECT },
    [TM_OBJECT_TYPE] = { "OBJECT_TYPE", SCOPE_OBJECT },
    [TM_OBJECT_STATUS] = { "OBJECT_STATUS", SCOPE_OBJECT },
    [TM_OBJECT_VIRUS] = { "OBJECT_VIRUS", SCOPE_OBJECT },
    [TM_OBJECT_ACTION] = { "OBJECT_ACTION", SCOPE_OBJECT },
    [TM_RECIPIENT_ADDR] = { "RECIPIENT_ADDR", SCOPE_RECIPIENT },
    [TM_CRLF] = { "CRLF", SCOPE_FIXED },
    [TM_TAB] = { "TAB", SCOPE_FIXED },
    [TM_HASH] = { "HASH", SCOPE_FIXED },
};

static const char *const list_names[] = { [SCOPE_OBJECT] = "OBJECT",
                                          [SCOPE_RECIPIENT] = "RECIPIENT" };

enum node_kind { NODE_TEXT, NODE_MACRO, NODE_FOREACH, NODE_END };

struct node {
    uint8_t kind;
    bool in_header;         /* before the template's first empty line */
    uint32_t a;             /* TEXT: offset; MACRO: macro; FOREACH: scope */
    uint32_t b;             /* TEXT: length; FOREACH: index of its END */
};

struct template {
    char *name;
    char *text;
    size_t len;
    struct node *nodes;
    size_t nnodes, cap;
};

struct parser {
    struct template *t;
    struct buf *err;
    unsigned line;
    bool in_header;
    long open_block;        /* node index of the open FOREACH, -1 none */
    unsigned open_line;
};

static struct node *node_add(struct parser *p, enum node_kind kind, uint32_t a, uint32_t b)
{
    struct template *t = p->t;

    if (t->nnodes == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 32;
        t->nodes = xreallocarray(t->nodes, t->cap, sizeof(*t->nodes));
    }
    t->nodes[t->nnodes] = (struct node){ kind, p->in_header, a, b };
    return &t->nodes[t->nnodes++];
}

static void node_text(struct parser *p, size_t off, size_t len)
{
    struct node *last = p->t->nnodes ? &p->t->nodes[p->t->nnodes - 1] : NULL;

    if (len == 0)
        return;
    if (last && last->kind == NODE_TEXT && last->a + last->b == off
        && last->in_header == p->in_header) {
        last->b += (uint32_t)len;
        return;
    }
    node_add(p, NODE_TEXT, (uint32_t)off, (uint32_t)len);
}

static int parse_error(struct parser *p, unsigned line, const char *what, const char *tok,
                       size_t toklen)
{
    buf_printf(p->err, "%s:%u: %s", p->t->name, line, what);
    if (tok != NULL) {
        buf_append_str(p->err, " %");
        for (size_t i = 0; i < toklen && i < TOKEN_MAX; i++)
            buf_append_byte(p->err, (uint8_t)(tok[i] >= 0x20 && tok[i] < 0x7f ? tok[i] : '?'));
        buf_append_str(p->err, toklen > TOKEN_MAX ? "...%" : "%");
    }
    buf_append_byte(p->err, '\n');
    return -1;
}

static int macro_find(const char *tok, size_t n)
{
    for (int i = 0; i < TM_COUNT; i++)
        if (strlen(macros[i].name) == n && memcmp(macros[i].name, tok, n) == 0)
            return i;
    return -1;
}

static int parse_foreach(struct parser *p, const char *tok, size_t n)
{
    const char *list = tok + 8;
    size_t ln = n - 8;

    if (p->open_block >= 0)
        return parse_error(p, p->line, "nested block", tok, n);
    for (int s = SCOPE_OBJECT; s <= SCOPE_RECIPIENT; s++) {
        if (strlen(list_names[s]) == ln && memcmp(list_names[s], list, ln) == 0) {
            p->open_block = (long)p->t->nnodes;
            p->open_line = p->line;
            node_add(p, NODE_FOREACH, (uint32_t)s, 0);
            return 0;
        }
    }
    return parse_error(p, p->line, "unknown block", tok, n);
}

static int parse_token(struct parser *p, const char *tok, size_t n)
{
    int m;

    if (n > 8 && memcmp(tok, "FOREACH ", 8) == 0)
        return parse_foreach(p, tok, n);
    if (n == 3 && memcmp(tok, "END", 3) == 0) {
        if (p->open_block < 0)
            return parse_error(p, p->line, "%END% without a %FOREACH% block", NULL, 0);
        p->t->nodes[p->open_block].b = (uint32_t)p->t->nnodes;
        node_add(p, NODE_END, (uint32_t)p->open_block, 0);
        p->open_block = -1;
        return 0;
    }
    m = macro_find(tok, n);
    if (m < 0)
        return parse_error(p, p->line, "unknown macro", tok, n);
    if (macros[m].scope == SCOPE_OBJECT || macros[m].scope == SCOPE_RECIPIENT) {
        if (p->open_block < 0 || p->t->nodes[p->open_block].a != (uint32_t)macros[m].scope)
            return parse_error(p, p->line, "macro outside its block", tok, n);
    }
    node_add(p, NODE_MACRO, (uint32_t)m, 0);
    return 0;
}

/* At s[i] == '%': a "%%", or a token up to the next '%' on this line. */
static int parse_percent(struct parser *p, const char *s, size_t len, size_t *i)
{
    size_t j = *i + 1;

    if (j < len && s[j] == '%') {
        node_text(p, *i, 1);
        *i = j + 1;
        return 0;
    }
    while (j < len && s[j] != '%' && s[j] != '\n')
        j++;
    if (j >= len || s[j] != '%')
        return parse_error(p, p->line, "unterminated macro (write %% for a percent sign)",
                           NULL, 0);
    if (parse_token(p, s + *i + 1, j - *i - 1) < 0)
        return -1;
    *i = j + 1;
    return 0;
}

/* One line starting at s[*i]; a comment line is skipped whole. */
static int parse_line(struct parser *p, const char *s, size_t len, size_t *i)
{
    size_t start = *i, lit = *i;

    if (s[start] == '#') {
        while (*i < len && s[(*i)++] != '\n')
            ;
        return 0;
    }
    if (s[start] == '\n' || (s[start] == '\r' && start + 1 < len && s[start + 1] == '\n'))
        p->in_header = false;
    while (*i < len && s[*i] != '\n') {
        if (s[*i] != '%') {
            (*i)++;
            continue;
        }
        node_text(p, lit, *i - lit);
        if (parse_percent(p, s, len, i) < 0)
            return -1;
        lit = *i;
    }
    if (*i < len)
        (*i)++;     /* the newline belongs to the text */
    node_text(p, lit, *i - lit);
    return 0;
}

static bool template_text_ok(struct parser *p, const char *text, size_t len)
{
    if (len > TEMPLATE_MAX_SIZE) {
        buf_printf(p->err, "%s: template larger than %d bytes\n", p->t->name,
                   TEMPLATE_MAX_SIZE);
        return false;
    }
    if (memchr(text, 0, len) != NULL) {
        buf_printf(p->err, "%s: template contains a NUL byte\n", p->t->name);
        return false;
    }
    return true;
}

struct template *template_compile(const char *name, const char *text, size_t len,
                                   struct buf *err)
{
    struct template *t = xcalloc(1, sizeof(*t));
    struct parser p = { t, err, 1, true, -1, 0 };
    size_t i = 0;
    int rc = 0;

    t->name = xstrdup(name ? name : "template");
    if (!template_text_ok(&p, text, len)) {
        template_free(t);
        return NULL;
    }
    t->text = xmalloc(len + 1);
    memcpy(t->text, text, len);
    t->text[len] = 0;
    t->len = len;
    for (; i < len && rc == 0; p.line++)
        rc = parse_line(&p, t->text, len, &i);
    if (rc == 0 && p.open_block >= 0) {
        char *tok = xasprintf("FOREACH %s", list_names[t->nodes[p.open_block].a]);
        rc = parse_error(&p, p.open_line, "unterminated block", tok, strlen(tok));
        free(tok);
    }
    if (rc < 0) {
        template_free(t);
        return NULL;
    }
    return t;
}

struct template *template_load(const char *path, struct buf *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    struct template *t = NULL;
    char *text;

    if (fd < 0) {
        buf_printf(err, "%s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TEMPLATE_MAX_SIZE) {
        buf_printf(err, "%s: not a regular file of at most %d bytes\n", path, TEMPLATE_MAX_SIZE);
        close(fd);
        return NULL;
    }
    text = xmalloc((size_t)st.st_size + 1);
    ssize_t n = read(fd, text, (size_t)st.st_size + 1);
    if (n < 0 || n > st.st_size)
        buf_printf(err, "%s: read error or file changed while reading\n", path);
    else
        t = template_compile(path, text, (size_t)n, err);
    free(text);
    close(fd);
    return t;
}

void template_free(struct template *t)
{
    if (t == NULL)
        return;
    free(t->name);
    free(t->text);
    free(t->nodes);
    free(t);
}

const char *template_name(const struct template *t)
{
    return t->name;
}

void template_vars_init(struct template_vars *v)
{
    memset(v, 0, sizeof(*v));
}

int template_vars_set(struct template_vars *v, const char *name, const char *value)
{
    int m = macro_find(name, strlen(name));

    if (m < 0 || m >= TEMPLATE_NMACROS)
        return -1;
    v->value[m] = value;
    return 0;
}

const char *const *template_macro_names(void)
{
    static const char *names[TM_COUNT + 1];

    for (int i = 0; i < TM_COUNT; i++)
        names[i] = macros[i].name;
    names[TM_COUNT] = NULL;
    return names;
}

void template_header_safe(struct buf *out, const char *value)
{
    bool blank = false;

    for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
        if (*s < 0x20 || *s == 0x7f) {
            if (!blank)
                buf_append_byte(out, ' ');
            blank = true;
            continue;
        }
        buf_append_byte(out, *s);
        blank = false;
    }
}

/* Body copy: with crlf, every lone LF or CR becomes CRLF. */
static void append_body(struct buf *out, const char *s, size_t n, bool crlf)
{
    size_t lit = 0;

    if (!crlf) {
        buf_append(out, s, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\n' && s[i] != '\r')
            continue;
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
            i++;
            continue;
        }
        buf_append(out, s + lit, i - lit);
        buf_append(out, "\r\n", 2);
        lit = i + 1;
    }
    buf_append(out, s + lit, n - lit);
}

static const char *object_field(const struct template_object *o, unsigned m)
{
    switch (m) {
    case TM_OBJECT_NAME: return o->name;
    case TM_OBJECT_TYPE: return o->type;
    case TM_OBJECT_STATUS: return o->status;
    case TM_OBJECT_VIRUS: return o->virus;
    case TM_OBJECT_ACTION: return o->action;
    }
    return NULL;
}

static const char *date_now(char *tmp, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;

    localtime_r(&now, &tm);
    strftime(tmp, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
    return tmp;
}

struct expansion {
    const struct template *t;
    const struct template_vars *v;
    unsigned flags;
    struct buf *out;
    size_t item;            /* current list item */
};

static const char *macro_value(const struct expansion *x, unsigned m, char *tmp, size_t size)
{
    if (m < TEMPLATE_NMACROS) {
        if (m == TEMPLATE_DATE && x->v->value[m] == NULL)
            return date_now(tmp, size);
        return x->v->value[m];
    }
    if (m == TM_RECIPIENT_ADDR)
        return x->item < x->v->nrecipients ? x->v->recipients[x->item] : NULL;
    if (m <= TM_OBJECT_ACTION)
        return x->item < x->v->nobjects ? object_field(&x->v->objects[x->item], m) : NULL;
    return NULL;
}

static void expand_macro(struct expansion *x, const struct node *nd)
{
    char tmp[64];
    const char *val;
    bool crlf = (x->flags & TEMPLATE_CRLF) != 0;

    switch (nd->a) {
    case TM_CRLF: buf_append(x->out, "\r\n", 2); return;
    case TM_TAB: buf_append_byte(x->out, '\t'); return;
    case TM_HASH: buf_append_byte(x->out, '#'); return;
    }
    val = macro_value(x, nd->a, tmp, sizeof(tmp));
    if (val == NULL)
        return;
    if ((x->flags & TEMPLATE_HEADER_SAFE) || ((x->flags & TEMPLATE_MESSAGE) && nd->in_header))
        template_header_safe(x->out, val);
    else
        append_body(x->out, val, strlen(val), crlf);
}

static size_t expand_range(struct expansion *x, size_t from, size_t to);

static size_t expand_block(struct expansion *x, size_t i)
{
    const struct node *nd = &x->t->nodes[i];
    size_t n = nd->a == SCOPE_OBJECT ? x->v->nobjects : x->v->nrecipients;

    for (size_t k = 0; k < n; k++) {
        x->item = k;
        expand_range(x, i + 1, nd->b);
    }
    return nd->b + 1;
}

static size_t expand_range(struct expansion *x, size_t from, size_t to)
{
    size_t i = from;

    while (i < to) {
        const struct node *nd = &x->t->nodes[i];
        if (nd->kind == NODE_FOREACH) {
            i = expand_block(x, i);
            continue;
        }
        if (nd->kind == NODE_TEXT)
            append_body(x->out, x->t->text + nd->a, nd->b, (x->flags & TEMPLATE_CRLF) != 0);
        else if (nd->kind == NODE_MACRO)
            expand_macro(x, nd);
        i++;
    }
    return i;
}

int template_expand(const struct template *t, const struct template_vars *v, unsigned flags,
                    struct buf *out)
{
    static const struct template_vars none;
    struct expansion x = { t, v ? v : &none, flags, out, 0 };

    expand_range(&x, 0, t->nnodes);
    return 0;
}
