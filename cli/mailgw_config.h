/*
 * mailgw_config - the "check" and "config" commands of mailgw(8).
 *
 *   mailgw check [-c FILE]
 *       validate; diagnostics on stderr; "Config OK" on stdout; exit 0/1
 *   mailgw config [-c FILE] [-n | -d] [-h] [Section.Name | Name ...]
 *       postconf-like: all effective values, -n only those set in the file,
 *       -d the defaults (no file needed), -h values only; named parameters
 *       only when given
 *   mailgw config --man
 *       the roff parameter list of mailgw.conf(5), generated from the table
 *
 * argv[0] is the command name ("check", "config"); options follow.  The
 * file is -c FILE, else $MAILGW_CONF, else /etc/mailgw/mailgw.conf (a
 * dispatcher that takes a global -c may pass it on or set MAILGW_CONF).
 * Both return the process exit status.
 */
#ifndef MAILGW_CLI_CONFIG_H
#define MAILGW_CLI_CONFIG_H

#define MAILGW_DEFAULT_CONF "/etc/mailgw/mailgw.conf"

int mailgw_cmd_check(int argc, char **argv);
int mailgw_cmd_config(int argc, char **argv);

/* opt if not NULL, else $MAILGW_CONF, else MAILGW_DEFAULT_CONF. */
const char *mailgw_config_path(const char *opt);

#endif
