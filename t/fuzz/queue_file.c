/*
 * fuzz/queue_file - libFuzzer target over the queue file reader
 * (lib/queue/queue_file.c): any bytes, as a file, must be accepted or
 * rejected with a reason, never crash, leak or read out of bounds; an
 * accepted file's content must stream back exactly content_size bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "queue/queue_file.h"

static void fuzz_stream(int fd, const struct queue_file *qf)
{
    struct queue_content c;
    char tmp[4096];
    const char *why = NULL;
    uint64_t total = 0;
    ssize_t n;

    queue_content_open(&c, fd, qf);
    while ((n = queue_content_read(&c, tmp, sizeof tmp, &why)) > 0)
        total += (uint64_t)n;
    if (n < 0 || total != qf->content_size)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct queue_file qf;
    const char *why = NULL;
    int fd = memfd_create("fuzz", MFD_CLOEXEC);

    if (fd < 0)
        return 0;
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    if (queue_file_read(fd, &qf, &why) == 0) {
        if (qf.env.nrcpts == 0 || qf.env.sender == NULL)
            abort();
        fuzz_stream(fd, &qf);
        queue_file_free(&qf);
    } else if (why == NULL) {
        abort();
    }
    close(fd);
    return 0;
}
