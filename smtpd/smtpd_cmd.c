/*
 * smtpd_cmd - SMTP command line parsing.  See smtpd_cmd.h.  Paths and
 * ESMTP parameters are lib/addr's (addr_path_parse).
 *
 * Security: input is one peer-supplied line; every index is checked
 * against its length; the result points into the line.  Nothing here
 * allocates or logs.
 */
#include "smtpd_cmd.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    int verb;
} verbs[] = {
    {"HELO", SMTPD_V_HELO}, {"EHLO", SMTPD_V_EHLO}, {"STARTTLS", SMTPD_V_STARTTLS},
    {"MAIL", SMTPD_V_MAIL}, {"RCPT", SMTPD_V_RCPT}, {"DATA", SMTPD_V_DATA},
    {"BDAT", SMTPD_V_BDAT}, {"RSET", SMTPD_V_RSET}, {"NOOP", SMTPD_V_NOOP},
    {"VRFY", SMTPD_V_VRFY}, {"EXPN", SMTPD_V_EXPN}, {"HELP", SMTPD_V_HELP},
    {"QUIT", SMTPD_V_QUIT},
};

static const char *const verb_names[SMTPD_V_COUNT] = {
    "unknown", "helo", "ehlo", "starttls", "mail", "rcpt", "data",
    "bdat", "rset", "noop", "vrfy", "expn", "help", "quit",
};

const char *smtpd_verb_name(int verb)
{
    if (verb < 0 || verb >= SMTPD_V_COUNT)
        return "unknown";
    return verb_names[verb];
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* "FROM:" / "TO:" then optional blanks. */
static int cmd_keyword(struct smtpd_cmd *c, const char *kw, const char **why)
{
    size_t kl = strlen(kw);

    if (c->arglen < kl || strncasecmp(c->arg, kw, kl) != 0) {
        *why = c->verb == SMTPD_V_MAIL ? "Syntax: MAIL FROM:<address>"
                                       : "Syntax: RCPT TO:<address>";
        return -1;
    }
    c->arg += kl;
    c->arglen -= kl;
    while (c->arglen && is_blank(*c->arg))
        c->arg++, c->arglen--;
    return 0;
}

int smtpd_cmd_parse(const char *line, size_t len, struct smtpd_cmd *c, const char **why)
{
    size_t i, vl;

    c->verb = SMTPD_V_UNKNOWN;
    c->arg = line;
    c->arglen = 0;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (ch == '\r' || ch == '\n') {
            *why = ch == '\r' ? "Error: bare <CR> received" : "Error: bare <LF> received";
            return -1;
        }
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            *why = "Error: control character in command";
            return -1;
        }
    }
    for (vl = 0; vl < len && !is_blank(line[vl]); vl++)
        ;
    for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strlen(verbs[i].name) == vl && strncasecmp(line, verbs[i].name, vl) == 0) {
            c->verb = verbs[i].verb;
            break;
        }
    }
    for (i = vl; i < len && is_blank(line[i]); i++)
        ;
    c->arg = line + i;
    c->arglen = len - i;
    while (c->arglen && is_blank(c->arg[c->arglen - 1]))
        c->arglen--;
    if (c->verb == SMTPD_V_MAIL)
        return cmd_keyword(c, "FROM:", why);
    if (c->verb == SMTPD_V_RCPT)
        return cmd_keyword(c, "TO:", why);
    return 0;
}
