/* smtpd_cmd.t - the smtpd command line parser. */
#include <string.h>

#include "tap.h"
#include "../../smtpd/smtpd_cmd.c"

static int parse(const char *line, struct smtpd_cmd *c, const char **why)
{
    return smtpd_cmd_parse(line, strlen(line), c, why);
}

int main(void)
{
    struct smtpd_cmd c;
    const char *why = NULL;

    ok(parse("EHLO client.test", &c, &why) == 0 && c.verb == SMTPD_V_EHLO, "EHLO");
    ok(c.arglen == 11 && memcmp(c.arg, "client.test", 11) == 0, "EHLO argument");
    ok(parse("ehlo  x  ", &c, &why) == 0 && c.arglen == 1, "lower case, blanks trimmed");
    ok(parse("MAIL FROM:<a@b>", &c, &why) == 0 && c.verb == SMTPD_V_MAIL &&
           c.arglen == 5 && memcmp(c.arg, "<a@b>", 5) == 0, "MAIL FROM:");
    ok(parse("mail from: <a@b> SIZE=10", &c, &why) == 0 && c.arglen == 13,
       "MAIL FROM: with a blank after the colon");
    ok(parse("MAIL TO:<a@b>", &c, &why) < 0 && strstr(why, "MAIL FROM"), "MAIL TO: refused");
    ok(parse("RCPT TO:<a@b>", &c, &why) == 0 && c.verb == SMTPD_V_RCPT, "RCPT TO:");
    ok(parse("RCPT", &c, &why) < 0, "RCPT without TO:");
    ok(parse("DATA", &c, &why) == 0 && c.verb == SMTPD_V_DATA && c.arglen == 0, "DATA");
    ok(parse("BDAT 100 LAST", &c, &why) == 0 && c.verb == SMTPD_V_BDAT && c.arglen == 8, "BDAT");
    ok(parse("STARTTLS", &c, &why) == 0 && c.verb == SMTPD_V_STARTTLS, "STARTTLS");
    ok(parse("QUITX", &c, &why) == 0 && c.verb == SMTPD_V_UNKNOWN, "QUITX is unknown");
    ok(parse("", &c, &why) == 0 && c.verb == SMTPD_V_UNKNOWN, "empty line is unknown");
    ok(smtpd_cmd_parse("NOOP\rX", 6, &c, &why) < 0 && strstr(why, "bare <CR>"), "bare CR");
    ok(smtpd_cmd_parse("NOOP\nX", 6, &c, &why) < 0 && strstr(why, "bare <LF>"), "bare LF");
    ok(smtpd_cmd_parse("NOOP\0X", 6, &c, &why) < 0, "NUL refused");
    ok(parse("NOOP \x1b[0m", &c, &why) < 0, "escape refused");
    ok(parse("HELO a\tb", &c, &why) == 0, "TAB allowed");
    is_str(smtpd_verb_name(SMTPD_V_EHLO), "ehlo", "verb name");
    is_str(smtpd_verb_name(99), "unknown", "verb name out of range");
    return tap_done();
}
