/*
 * smtpd_cmd - the SMTP command line parser: pure functions over one line
 * (without its CRLF), unit tested and fuzzed.  No I/O, no allocation.
 *
 * smtpd_cmd_parse() finds the verb and its argument; MAIL FROM: and
 * RCPT TO: are recognised with optional blanks after the colon.
 * The path and ESMTP parameters after MAIL FROM:/RCPT TO: are parsed by
 * lib/addr (addr_path_parse).  Control characters, NUL, CR, LF in a
 * command line are refused here already, so they never reach the queue.
 *
 * Diagnostics: -1 with *why a static text for the 501 reply.
 */
#ifndef MAILGW_SMTPD_CMD_H
#define MAILGW_SMTPD_CMD_H

#include <stdbool.h>
#include <stddef.h>

enum smtpd_verb {
    SMTPD_V_UNKNOWN = 0,
    SMTPD_V_HELO,
    SMTPD_V_EHLO,
    SMTPD_V_STARTTLS,
    SMTPD_V_MAIL,
    SMTPD_V_RCPT,
    SMTPD_V_DATA,
    SMTPD_V_BDAT,
    SMTPD_V_RSET,
    SMTPD_V_NOOP,
    SMTPD_V_VRFY,
    SMTPD_V_EXPN,
    SMTPD_V_HELP,
    SMTPD_V_QUIT,
    SMTPD_V_COUNT,
};

struct smtpd_cmd {
    int verb;               /* enum smtpd_verb */
    const char *arg;        /* into the line: after the verb (and after
                             * "FROM:"/"TO:" for MAIL/RCPT), blanks skipped */
    size_t arglen;          /* trailing blanks removed */
};

/* Parse a command line.  -1 with *why on a line that has NUL or control
 * characters other than TAB, or a MAIL/RCPT without FROM:/TO:.  An unknown
 * verb is not an error (verb = SMTPD_V_UNKNOWN). */
int smtpd_cmd_parse(const char *line, size_t len, struct smtpd_cmd *c, const char **why);
/* Lower-case verb name for logs ("ehlo", "unknown"). */
const char *smtpd_verb_name(int verb);

#endif
