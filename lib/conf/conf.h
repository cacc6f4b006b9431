/*
 * conf - mailgw.conf: the typed parameter table and the parser (DESIGN §6).
 *
 * Sections use Kaspersky Mail Gateway's names ([mailgw.network], ...);
 * [smtpgw.X] is an alias of [mailgw.X].  Lookups always use the canonical
 * "mailgw.X" section name.  Repeated lines make lists; a list value
 * "file:/abs/path" is replaced by the lines of that file (blank lines and
 * '#'/';' comments skipped).  Booleans: true/false/yes/no/y/n/1/0.  Sizes take
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
    CONF_SPLIT = 1 << 2,    /* CONF_LIST: "a, b" on one line is two items */
    CONF_PATH = 1 << 3,     /* a relative path is made absolute against the
                               working directory at load time */
    CONF_GROUP_ONLY = 1 << 4,   /* only in [mailgw.group:NAME] (Senders...) */
    CONF_STATUSLIST = 1 << 5,   /* CONF_LIST of object statuses: clean is not
                                   one; disinfected infected suspicious
                                   protected corrupted error filtered all none */
    CONF_TEMPLATE = 1 << 6,     /* CONF_STR: a template file (lib/template),
                                   relative to the config file's directory,
                                   compiled at load (conf_group_template) */
};

/* Value syntax checked beyond the type (see conf_syntax.c). */
enum conf_syntax {
    SYN_NONE,
    SYN_HOSTNAME,       /* DNS name */
    SYN_EMAIL,          /* local@domain */
    SYN_DOMAINMASK,     /* domain or address mask with * and ? */
    SYN_IPMASK,         /* ip | ip/nn | ip/dotted-mask */
    SYN_LISTEN,         /* ipv4:port | [ipv6]:port */
    SYN_ROUTE,          /* mask domain | mask [host] | mask [host:port] */
    SYN_RELAYRULE,      /* allow|deny from IPMASK|any|file:/P to RCPT|file:/P */
    SYN_CONNECTRULE,    /* ... from in_dnsbl|out_dnsbl|has_name|no_name|any */
    SYN_HELORULE,       /* ... from has_ip|no_ip|same_ip|diff_ip|any */
    SYN_MAILFROMRULE,   /* ... from has_ip|no_ip|has_mx|no_mx|any */
    SYN_DNSBL,          /* zone | zone=127.0.0.2,127.0.0.4 */
    SYN_NAMESERVER,     /* ip | ip:port | [ipv6] | [ipv6]:port */
    SYN_TLSPROTO,       /* TLSv1 TLSv1.1 TLSv1.2 TLSv1.3, space separated */
    SYN_USER,           /* user or group name */
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
    enum conf_syntax syntax;
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
 * that is not in the table, or with the wrong accessor, is a programming
 * error (log_fatal).  conf_str works for every type (for a list it is the
 * items joined by ", "; a CONF_PATH value comes back absolute);
 * conf_int works for INT, SIZE (bytes), TIME (seconds), BOOL (0/1) and
 * ENUM (the index of the word in "a|b|c"). */
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

/* Per-group values of the CONF_GROUP parameters of [mailgw.policy]:
 * group is an index of conf_group_name() or -1 for [mailgw.policy]
 * itself; a parameter the group does not set is [mailgw.policy]'s value
 * (a group list replaces the policy list, it does not add to it).  An
 * index out of range or a parameter without CONF_GROUP is a programming
 * error (log_fatal).  A CONF_GROUP_ONLY parameter (Senders, Recipients)
 * is empty for -1. */
const char *conf_group_str(const struct conf *c, int group, const char *name);
long long conf_group_int(const struct conf *c, int group, const char *name);
bool conf_group_bool(const struct conf *c, int group, const char *name);
size_t conf_group_list(const struct conf *c, int group, const char *name,
                       const char *const **items);
/* true when the group's own section sets the parameter (-1: the policy). */
bool conf_group_is_set(const struct conf *c, int group, const char *name);
/* Index of a group by name, -1 when there is none. */
int conf_group_index(const struct conf *c, const char *name);
/* The compiled template of a CONF_TEMPLATE parameter for a group, or NULL
 * when the parameter is left at its default and that file does not exist
 * (the caller then uses its built-in text).  A template that is set but
 * missing, or that does not compile, made conf_load fail. */
struct template;
const struct template *conf_group_template(const struct conf *c, int group, const char *name);

enum conf_print_mode { CONF_PRINT_ALL, CONF_PRINT_NONDEFAULT, CONF_PRINT_DEFAULTS };
/* postconf-like output: "[section]" headers then "Name = value" lines. */
void conf_print(const struct conf *c, FILE *out, enum conf_print_mode mode);

/* Lookup of the table entry (NULL if unknown). */
const struct conf_param *conf_param_find(const char *section, const char *name);

/* Table entry by name alone when exactly one section has it, or by
 * "section.Name" (e.g. "mailgw.limits.IncomingSessions"); NULL otherwise. */
const struct conf_param *conf_param_lookup(const char *spec);

/* Print one parameter as "Name = value" lines (one per list item), without
 * a section header; c may be NULL with CONF_PRINT_DEFAULTS. */
void conf_print_param(const struct conf *c, FILE *out, const struct conf_param *p,
                      enum conf_print_mode mode);

/* Read a list file (what "file:/abs/path" names): one item per line, blank
 * lines and '#'/';' comments skipped, surrounding blanks trimmed.  Problems
 * go to diag as "PATH:LINE: ..." (or "PATH: ..." when unreadable).  On
 * success *items (NULL-terminated, free with conf_list_file_free) and
 * optionally *lines (line numbers, free()) are set; returns the count, or
 * -1 on error (nothing to free). */
long conf_list_file(const char *path, char ***items, unsigned **lines, struct buf *diag);
void conf_list_file_free(char **items);

/* A rule (RelayRule, ConnectRule, HeloRule, MailfromRule) split into its
 * parts; the parts point into text, which conf_rule_split modifies.
 * Returns 0, or -1 when text is not "allow|deny from COND to RCPT". */
struct conf_rule {
    bool allow;
    const char *from;   /* condition word, ip mask, "any" or "file:/path" */
    const char *to;     /* recipient mask, "*", "any" or "file:/path" */
};
int conf_rule_split(char *text, struct conf_rule *rule);

/* The bare-number unit multiplier of a size or time parameter (1 when it
 * has none); conf_int() values are already multiplied. */
long long conf_unit_scale(const struct conf_param *p);

#endif
