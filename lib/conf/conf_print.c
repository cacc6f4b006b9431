/*
 * conf_print - postconf-like output of the configuration (mailgw config).
 *
 * Interface: conf_print(), conf_print_param() (conf.h).
 *
 * Output: a "[section]" header (sections in table order, a blank line
 * between them), then "Name = value" lines; a list prints one line per
 * entry as written ("file:/path" stays as is), an empty value prints
 * "Name =".  Modes: all effective values, only parameters set in the file
 * (-n), or the table defaults (-d, no file needed).
 */
#include "conf/conf_impl.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

static void conf_print_line(FILE *out, const char *name, const char *value)
{
    if (value == NULL || *value == 0)
        fprintf(out, "%s =\n", name);
    else
        fprintf(out, "%s = %s\n", name, value);
}

static void conf_print_default(FILE *out, const struct conf_param *p)
{
    if (p->type != CONF_LIST || p->def == NULL || !(p->flags & CONF_SPLIT)) {
        conf_print_line(out, p->name, p->def);
        return;
    }
    char *copy = xstrdup(p->def), *save = NULL;
    for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save))
        conf_print_line(out, p->name, conf_trim(it));
    free(copy);
}

void conf_print_param(const struct conf *c, FILE *out, const struct conf_param *p,
                      enum conf_print_mode mode)
{
    if (mode == CONF_PRINT_DEFAULTS || c == NULL) {
        conf_print_default(out, p);
        return;
    }
    if (p->type != CONF_LIST) {
        conf_print_line(out, p->name, conf_raw_text(c, p));
        return;
    }
    size_t n;
    const char *const *raw = conf_raw_entries(c, p, &n);
    if (n == 0)
        conf_print_line(out, p->name, "");
    for (size_t i = 0; i < n; i++)
        conf_print_line(out, p->name, raw[i]);
}

void conf_print(const struct conf *c, FILE *out, enum conf_print_mode mode)
{
    const char *section = NULL;
    for (size_t i = 0; i < conf_nparams; i++) {
        const struct conf_param *p = &conf_params[i];
        if (mode == CONF_PRINT_NONDEFAULT && (c == NULL || !conf_is_set(c, p->section, p->name)))
            continue;
        if (section == NULL || strcmp(section, p->section) != 0) {
            fprintf(out, "%s[%s]\n", section ? "\n" : "", p->section);
            section = p->section;
        }
        conf_print_param(c, out, p, mode);
    }
    if (c != NULL && mode != CONF_PRINT_DEFAULTS)
        conf_print_groups(c, out);
}
