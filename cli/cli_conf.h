/*
 * cli_conf - configuration path resolution and loading shared by the
 * user commands (mailgw, mailgwq).
 *
 * The path is the command's option (-c FILE for mailgw, -C FILE for
 * mailgwq), else $MAILGW_CONF, else CLI_DEFAULT_CONF.
 */
#ifndef MAILGW_CLI_CONF_H
#define MAILGW_CLI_CONF_H

#include <stdbool.h>

struct conf;

#define CLI_DEFAULT_CONF "/etc/mailgw/mailgw.conf"

/* opt when not NULL/empty, else $MAILGW_CONF when set and not empty, else
 * CLI_DEFAULT_CONF. */
const char *cli_config_path(const char *opt);

/* Load and validate path.  On failure print "PROG: ..." diagnostics to
 * stderr and return NULL with *denied set when the file exists but this
 * user may not read it (EACCES/EPERM), so callers can report "permission
 * denied".  Warnings are printed only when verbose. */
struct conf *cli_conf_load(const char *prog, const char *path, bool verbose, bool *denied);

#endif
