/*
 * io - whole reads at an offset.
 */
#ifndef MAILGW_UTIL_IO_H
#define MAILGW_UTIL_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Read exactly n bytes at off (pread, retried on EINTR and short reads;
 * the fd offset is untouched).  0, or -1 on an error or end of file
 * (errno EIO then). */
int io_pread_full(int fd, void *p, size_t n, off_t off);

#endif
