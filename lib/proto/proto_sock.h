/*
 * proto_sock - private to lib/proto: one sendmsg/recvmsg with SCM_RIGHTS,
 * shared by the blocking helpers (proto_io.c) and proto_conn (proto_conn.c).
 */
#ifndef MAILGW_PROTO_SOCK_H
#define MAILGW_PROTO_SOCK_H

#include <stddef.h>
#include <sys/types.h>

/* One sendmsg (MSG_NOSIGNAL | flags) of n bytes, the fds (if any) riding
 * on the first byte.  Returns the bytes written or -1 (errno). */
ssize_t proto_sock_send(int sock, const void *p, size_t n, const int *fds,
                        size_t nfds, int flags);

/* One recvmsg (MSG_CMSG_CLOEXEC | flags) of up to n bytes.  Received fds
 * are stored in fds[*nfds...] up to room more; more than room, or a
 * truncated control message, closes them all and fails.  Returns bytes
 * read (0 = end of stream) or -1 with *why ("I/O error" keeps errno). */
ssize_t proto_sock_recv(int sock, void *p, size_t n, int *fds, size_t *nfds,
                        size_t room, int flags, const char **why);

/* Check a frame header (PROTO_HEADER_LEN bytes): 0 with the body length
 * and fd count, or -1 with *why. */
int proto_header_parse(const void *hdr, size_t *bodylen, size_t *nfds, const char **why);

#endif
