/*
 * io - whole reads at an offset (see io.h), shared by the queue file and
 * the quarantine store readers.
 */
#include "util/io.h"

#include <errno.h>
#include <unistd.h>

int io_pread_full(int fd, void *p, size_t n, off_t off)
{
    char *d = p;

    while (n > 0) {
        ssize_t r = pread(fd, d, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            errno = EIO;
        if (r <= 0)
            return -1;
        d += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}
