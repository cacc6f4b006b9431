/* smtpd_cmd fuzz target: the SMTP command line parser.  Checks that the
 * argument always lies inside the line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../smtpd/smtpd_cmd.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtpd_cmd c;
    const char *why = NULL;
    const char *line = (const char *)data;

    if (smtpd_cmd_parse(line, size, &c, &why) == 0) {
        if (c.arg < line || c.arg + c.arglen > line + size)
            abort();
        if (c.verb < 0 || c.verb >= SMTPD_V_COUNT)
            abort();
    } else if (why == NULL) {
        abort();
    }
    return 0;
}
