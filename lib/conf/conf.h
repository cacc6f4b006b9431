/*
 * conf - mailgw.conf: the typed parameter table and the parser (DESIGN §6).
 *
 * Sections use Kaspersky Mail Gateway's names ([mailgw.network], ...);
 * [smtpgw.X] is an alias of [mailgw.X].  Lookups always use the canonical
 * "mailgw.X" section name.  Repeated lines make lists; a list value
 * "file:/abs/path" is replaced by the lines of that file (blank lines and
 * '#' comments skipped).  Booleans: true/false/yes/no/y/n/1/0.  Sizes take
 * units (B, K/KB, M/MB, G/GB; a bare number is the parameter's own unit,
 * e.g. KB for MaximalIncomingMessageSize) and are returned in bytes.
 * Times take units (s, m, h, d, w; a bare number is the parameter's own
 * unit, e.g. days for MaximalQueueLifetime) and are returned in seconds.
 *
 * Diagnostics name the file, the line, the parameter and what is allowed:
 *   "mailgw.conf:12: MaximalIncomingRcptsPerMessage: value 0 out of range 1..1024"
 * An unknown parameter or section is a warning; a bad value, a missing
 * required parameter, or an unreadable file: list is an error.
 */
#ifndef MAILGW_CONF_H
#define MAILGW_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

enum conf_type {
    CONF_STR,       /* free text (one line) */
    CONF_BOOL,
    CONF_INT,       /* plain number */
    CONF_SIZE,      /* bytes after units */
    CONF_TIME,      /* seconds after units */
    CONF_ENUM,      /* one of a fixed set of words */
    CONF_LIST,      /* repeatable line / comma list; file: allowed */
};

/* Which daemons use a parameter (for the docs and for reload). */
enum conf_owner {
    OWN_MASTER = 1 << 0,
    OWN_SMTPD = 1 << 1,
    OWN_QMGR = 1 << 2,
    OWN_SMTP = 1 << 3,
    OWN_SCAND = 1 << 4,
    OWN_SPFD = 1 << 5,
    OWN_QUARANTINE = 1 << 6,
    OWN_CLI = 1 << 7,
    OWN_UPDATER = 1 << 8,
    OWN_AGENTX = 1 << 9,
};

enum conf_flag {
    CONF_REQUIRED = 1 << 0,
    CONF_GROUP = 1 << 1,    /* may be overridden in [mailgw.group:NAME] */
};

struct conf_param {
    const char *section;    /* canonical, e.g. "mailgw.limits" */
    const char *name;       /* e.g. "IncomingSessions" */
    enum conf_type type;
    const char *def;        /* default as written in the file; NULL = none */
    long long min, max;     /* range, in the bare-number unit; 0,0 = none */
    const char *unit;       /* bare-number unit: "KB", "MB", "s", "d"... */
    const char *words;      /* CONF_ENUM: "a|b|c"; NULL otherwise */
    unsigned owners;        /* enum conf_owner bits */
    unsigned flags;         /* enum conf_flag bits */
    const char *doc;        /* one line */
};

extern const struct conf_param conf_params[];
extern const size_t conf_nparams;

struct conf;

/* Load and validate.  Warnings and errors go into diag, one per line.
 * Returns NULL when there was any error. */
struct conf *conf_load(const char *path, struct buf *diag);
void conf_free(struct conf *c);
const char *conf_file(const struct conf *c);

/* Effective values (the default when not set).  Asking for a parameter
 * that is not in the table is a programming error (log_fatal). */
const char *conf_str(const struct conf *c, const char *section, const char *name);
long long conf_int(const struct conf *c, const char *section, const char *name);
bool conf_bool(const struct conf *c, const char *section, const char *name);
/* List items (file: lists expanded); returns the count. */
size_t conf_list(const struct conf *c, const char *section, const char *name,
                 const char *const **items);
/* true when the parameter was set in the file. */
bool conf_is_set(const struct conf *c, const char *section, const char *name);

/* Policy groups: [mailgw.group:NAME] in file order. */
size_t conf_group_count(const struct conf *c);
const char *conf_group_name(const struct conf *c, size_t i);

enum conf_print_mode { CONF_PRINT_ALL, CONF_PRINT_NONDEFAULT, CONF_PRINT_DEFAULTS };
/* postconf-like output: "[section]" headers then "Name = value" lines. */
void conf_print(const struct conf *c, FILE *out, enum conf_print_mode mode);

/* Lookup of the table entry (NULL if unknown). */
const struct conf_param *conf_param_find(const char *section, const char *name);

#endif
