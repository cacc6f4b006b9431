/*
 * fuzz/conf - libFuzzer target for the mailgw.conf loader: the input is
 * written to a temporary file and loaded with conf_load(); on success the
 * configuration is printed (to /dev/null) and freed.  Any crash, leak,
 * hang or sanitizer report is a bug: a bad config must only give
 * diagnostics.  Seeds: t/fuzz/conf/ (the golden configs of t/conf/).
 */
#include "conf/conf.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char fuzz_path[64];
static FILE *fuzz_null;

static int fuzz_setup(void)
{
    snprintf(fuzz_path, sizeof fuzz_path, "/tmp/mailgw-fuzz-conf.XXXXXX");
    int fd = mkstemp(fuzz_path);
    if (fd < 0)
        return -1;
    close(fd);
    fuzz_null = fopen("/dev/null", "we");
    return fuzz_null ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_null == NULL && fuzz_setup() < 0)
        abort();
    int fd = open(fuzz_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    struct buf diag = BUF_INIT;
    struct conf *c = conf_load(fuzz_path, &diag);
    if (c) {
        conf_print(c, fuzz_null, CONF_PRINT_ALL);
        conf_print(c, fuzz_null, CONF_PRINT_NONDEFAULT);
        const char *const *items;
        conf_list(c, "mailgw.access", "RelayRule", &items);
        (void)conf_int(c, "mailgw.limits", "MaximalIncomingMessageSize");
        for (size_t i = 0; i < conf_group_count(c); i++)
            (void)conf_group_name(c, i);
        conf_free(c);
    }
    buf_free(&diag);
    return 0;
}
