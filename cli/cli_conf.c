/*
 * cli_conf - configuration path resolution and loading for the user
 * commands.
 *
 * Interface: cli_config_path(), cli_conf_load() (see cli_conf.h).
 *
 * Diagnostics: the parser's messages, prefixed with the command name, on
 * stderr.  An unreadable file is told apart from a broken one (access(2)
 * with the real ids before parsing) so a non-admin user gets "permission
 * denied" rather than a parse error.
 */
#include "cli_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/buf.h"

const char *cli_config_path(const char *opt)
{
    const char *env;

    if (opt != NULL && *opt != 0)
        return opt;
    env = getenv("MAILGW_CONF");
    if (env != NULL && *env != 0)
        return env;
    return CLI_DEFAULT_CONF;
}

struct conf *cli_conf_load(const char *prog, const char *path, bool verbose, bool *denied)
{
    struct buf diag = BUF_INIT;
    struct conf *c;

    *denied = false;
    if (access(path, R_OK) < 0) {
        int e = errno;
        *denied = e == EACCES || e == EPERM;
        fprintf(stderr, "%s: cannot read the configuration %s: %s\n", prog, path, strerror(e));
        return NULL;
    }
    c = conf_load(path, &diag);
    if (c == NULL)
        fprintf(stderr, "%s: configuration %s has errors:\n%s", prog, path,
                diag.data ? diag.data : "");
    else if (verbose && diag.len > 0)
        fprintf(stderr, "%s", diag.data);
    buf_free(&diag);
    return c;
}
