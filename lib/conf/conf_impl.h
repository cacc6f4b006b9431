/*
 * conf_impl - what the files of lib/conf share and nobody else uses.
 */
#ifndef MAILGW_CONF_IMPL_H
#define MAILGW_CONF_IMPL_H

#include "conf/conf.h"

#include <stdbool.h>

/* Longest accepted line and largest accepted file (config or list). */
#define CONF_LINE_MAX 65536
#define CONF_FILE_MAX (16u * 1024 * 1024)

/* A file read whole, walked line by line.  Bad lines (too long, NUL,
 * not UTF-8) are reported as "PATH:LINE: ..." errors and skipped. */
struct conf_reader {
    const char *path;
    struct buf text;
    size_t pos;
    unsigned lineno;
    unsigned errors;
};

int conf_reader_open(struct conf_reader *r, const char *path, struct buf *diag);
/* Next line, trimmed of surrounding blanks and CR; NULL at the end. */
char *conf_reader_next(struct conf_reader *r, struct buf *diag);
void conf_reader_close(struct conf_reader *r);

/* Diagnostics: "WHERE:LINE: NAME: text" (line 0 = "WHERE: ..."; name NULL
 * drops "NAME: "); warnings get "warning: " before the text. */
void conf_diag(struct buf *diag, const char *where, unsigned line, const char *name,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void conf_warn(struct buf *diag, const char *where, unsigned line, const char *name,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Typed value: 0 and *num set, or -1 with the reason in err. */
int conf_value_parse(const struct conf_param *p, const char *text, long long *num,
                     char **canon, struct buf *err);
/* Syntax (enum conf_syntax) of one value or list item found at
 * where:line: 0, or -1 with the reason in err.  Files a rule names are
 * read and checked; their problems go straight to diag. */
int conf_syntax_check(const struct conf_param *p, const char *text, const char *where,
                      unsigned line, struct buf *err, struct buf *diag);

/* conf_list_file() for a file named at where:line by parameter name: a
 * file that cannot be read is reported as "WHERE:LINE: NAME: PATH: why";
 * problems inside it as "PATH:LINE: ...". */
long conf_list_file_at(const char *path, const char *where, unsigned line, const char *name,
                       char ***items, unsigned **lines, struct buf *diag);

/* For conf_print.c: list entries as written ("file:/p" kept) and a
 * scalar as written. */
const char *const *conf_raw_entries(const struct conf *c, const struct conf_param *p, size_t *n);
const char *conf_raw_text(const struct conf *c, const struct conf_param *p);

/* The [mailgw.group:NAME] sections as conf_print shows them. */
void conf_print_groups(const struct conf *c, FILE *out);

bool conf_is_blank(int ch);
char *conf_trim(char *s);
bool conf_utf8_valid(const char *s, size_t n);
bool conf_ipmask_valid(const char *s);

#endif
