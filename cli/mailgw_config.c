/*
 * mailgw_config - "mailgw check" and "mailgw config" (see mailgw_config.h):
 * validating mailgw.conf, printing it postconf-style, and generating the
 * parameter list of mailgw.conf(5) from the parameter table.
 *
 * Diagnostics: the loader's lines ("FILE:LINE: NAME: ...") on stderr;
 * "mailgw config: unknown parameter 'X'" for a name not in the table;
 * usage errors print a usage line.  Exit status 0 ok, 1 error, 2 usage.
 *
 * Security: reads only the config file (and the list files it names);
 * needs no privileges; writes only to stdout/stderr.
 */
#include "mailgw_config.h"
#include "conf/conf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mailgw_config_path(const char *opt)
{
    const char *env = getenv("MAILGW_CONF");
    if (opt && *opt)
        return opt;
    return env && *env ? env : MAILGW_DEFAULT_CONF;
}

static struct conf *mailgw_config_load(const char *path)
{
    struct buf diag = BUF_INIT;
    struct conf *c = conf_load(path, &diag);
    if (diag.len)
        fwrite(diag.data, 1, diag.len, stderr);
    buf_free(&diag);
    return c;
}

int mailgw_cmd_check(int argc, char **argv)
{
    const char *file = NULL;
    int ch;
    optind = 0;
    while ((ch = getopt(argc, argv, "c:")) != -1) {
        if (ch != 'c') {
            fprintf(stderr, "usage: mailgw check [-c FILE]\n");
            return 2;
        }
        file = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "usage: mailgw check [-c FILE]\n");
        return 2;
    }
    struct conf *c = mailgw_config_load(mailgw_config_path(file));
    if (c == NULL)
        return 1;
    conf_free(c);
    printf("Config OK\n");
    return 0;
}

/* ---- mailgw.conf(5) generation ---- */

static void man_text(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

static const char *man_syntax_name(enum conf_syntax syn)
{
    static const char *const names[] = {
        [SYN_NONE] = "text", [SYN_HOSTNAME] = "host name", [SYN_EMAIL] = "e-mail address",
        [SYN_DOMAINMASK] = "domain masks", [SYN_IPMASK] = "IP masks",
        [SYN_LISTEN] = "addresses", [SYN_ROUTE] = "routes", [SYN_RELAYRULE] = "rules",
        [SYN_CONNECTRULE] = "rules", [SYN_HELORULE] = "rules", [SYN_MAILFROMRULE] = "rules",
        [SYN_DNSBL] = "zones", [SYN_NAMESERVER] = "addresses",
        [SYN_TLSPROTO] = "protocol names", [SYN_USER] = "name",
    };
    return names[syn] ? names[syn] : "text";
}

static void man_type(FILE *out, const struct conf_param *p)
{
    switch (p->type) {
    case CONF_STR:
        fprintf(out, "%s", (p->flags & CONF_PATH) ? "path" : man_syntax_name(p->syntax));
        break;
    case CONF_BOOL:
        fputs("boolean", out);
        break;
    case CONF_INT:
    case CONF_SIZE:
    case CONF_TIME:
        fputs(p->type == CONF_INT ? "number" : p->type == CONF_SIZE ? "size" : "time", out);
        if (p->words) {
            fputs(", one of ", out);
            man_text(out, p->words);
        } else if (p->min || p->max) {
            fprintf(out, ", %lld..%lld", p->min, p->max);
        }
        if (p->unit)
            fprintf(out, " %s (a bare number is in %s)", p->unit, p->unit);
        break;
    case CONF_ENUM:
        fputs("one of ", out);
        man_text(out, p->words);
        break;
    case CONF_LIST:
        fprintf(out, "list of %s (repeat the line%s; file:/path reads a list file)",
                man_syntax_name(p->syntax), (p->flags & CONF_SPLIT) ? " or separate by commas" : "");
        break;
    }
}

static void man_owners(FILE *out, unsigned owners)
{
    static const char *const names[] = { "master", "smtpd", "qmgr", "smtp", "scand", "spfd",
                                         "quarantine", "cli", "updater", "agentx" };
    const char *sep = "; used by ";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (owners & (1u << i)) {
            fprintf(out, "%s%s", sep, names[i]);
            sep = ", ";
        }
    }
    if (owners == 0)
        fputs("; unused", out);
}

static void man_param(FILE *out, const struct conf_param *p)
{
    fprintf(out, ".TP\n.B %s\n", p->name);
    man_type(out, p);
    if (p->flags & CONF_REQUIRED)
        fputs("; \\fBrequired\\fR", out);
    else if (p->def && *p->def) {
        fputs("; default \\fB", out);
        man_text(out, p->def);
        fputs("\\fR", out);
    } else {
        fputs("; default empty", out);
    }
    man_owners(out, p->owners);
    fputs(".\n.br\n", out);
    man_text(out, p->doc);
    fputs(".\n", out);
}

static void mailgw_config_man(FILE *out)
{
    const char *section = NULL;
    fputs(".\\\" BEGIN GENERATED PARAMETERS (mailgw config --man; t/conf/gen-man.sh)\n", out);
    fputs(".SH PARAMETERS\n", out);
    for (size_t i = 0; i < conf_nparams; i++) {
        const struct conf_param *p = &conf_params[i];
        if (section == NULL || strcmp(section, p->section) != 0) {
            fprintf(out, ".SS [%s]\n", p->section);
            section = p->section;
        }
        man_param(out, p);
    }
    fputs(".\\\" END GENERATED PARAMETERS\n", out);
}

/* ---- mailgw config ---- */

struct config_opts {
    const char *file;
    enum conf_print_mode mode;
    bool values_only, man;
};

static int config_usage(void)
{
    fprintf(stderr, "usage: mailgw config [-c FILE] [-n | -d] [-h] [Section.Name ...]\n"
                    "       mailgw config --man\n");
    return 2;
}

static int config_parse_args(int argc, char **argv, struct config_opts *o)
{
    static const struct option longopts[] = { { "man", no_argument, NULL, 'M' },
                                              { NULL, 0, NULL, 0 } };
    int ch;
    optind = 0;
    while ((ch = getopt_long(argc, argv, "c:ndh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->file = optarg; break;
        case 'n': o->mode = CONF_PRINT_NONDEFAULT; break;
        case 'd': o->mode = CONF_PRINT_DEFAULTS; break;
        case 'h': o->values_only = true; break;
        case 'M': o->man = true; break;
        default: return -1;
        }
    }
    return 0;
}

/* Named parameters; -h prints only the values. */
static int config_print_named(const struct conf *c, const struct config_opts *o, int argc,
                              char **argv)
{
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        const struct conf_param *p = conf_param_lookup(argv[i]);
        if (p == NULL) {
            fprintf(stderr, "mailgw config: unknown parameter '%s'\n", argv[i]);
            rc = 1;
            continue;
        }
        if (o->mode == CONF_PRINT_NONDEFAULT && !conf_is_set(c, p->section, p->name))
            continue;
        if (!o->values_only) {
            conf_print_param(c, stdout, p, o->mode);
            continue;
        }
        char *text = NULL;
        size_t len = 0;
        FILE *mf = open_memstream(&text, &len);
        if (mf == NULL)
            return 1;
        conf_print_param(c, mf, p, o->mode);
        fclose(mf);
        /* strip "Name = " / "Name =" from each line */
        size_t skip = strlen(p->name) + 2;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
            printf("%s\n", strlen(line) > skip ? line + skip + 1 : "");
        free(text);
    }
    return rc;
}

int mailgw_cmd_config(int argc, char **argv)
{
    struct config_opts o = { .mode = CONF_PRINT_ALL };
    if (config_parse_args(argc, argv, &o) < 0)
        return config_usage();
    if (o.man) {
        mailgw_config_man(stdout);
        return 0;
    }
    struct conf *c = NULL;
    if (o.mode != CONF_PRINT_DEFAULTS) {
        c = mailgw_config_load(mailgw_config_path(o.file));
        if (c == NULL)
            return 1;
    }
    int rc = 0;
    if (optind < argc)
        rc = config_print_named(c, &o, argc, argv);
    else
        conf_print(c, stdout, o.mode);
    conf_free(c);
    if (fflush(stdout) != 0)
        rc = 1;
    return rc;
}
