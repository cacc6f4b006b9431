/*
 * smtpd_qdump - test helper: print a queue file through the lib/queue
 * reader, for the smtpd integration tests.
 *
 * Usage: smtpd_qdump FILE
 * Output: "name=value" lines for the envelope (client_addr, client_name,
 * helo, proto, tls, sender, envid, ret, body, smtputf8), one
 * "rcpt=ADDR notify=N orcpt=VALUE" line per recipient, "flags=N" (the
 * FLAGS record, 0 without one), "size=N", then a
 * line "content:" followed by the raw content bytes.  Exit 1 with the
 * reader's reason on a bad file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "queue/queue_file.h"

static const char *str(const char *s)
{
    return s ? s : "(none)";
}

int main(int argc, char **argv)
{
    struct queue_file qf;
    struct queue_content qc;
    const char *why = NULL;
    char buf[65536];
    ssize_t n;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: smtpd_qdump FILE\n");
        return 2;
    }
    fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    if (queue_file_read(fd, &qf, &why) < 0) {
        fprintf(stderr, "%s: %s\n", argv[1], why);
        return 1;
    }
    printf("client_addr=%s\nclient_name=%s\nhelo=%s\nproto=%s\ntls=%s\n",
           str(qf.env.client_addr), str(qf.env.client_name), str(qf.env.helo),
           str(qf.env.proto), str(qf.env.tls));
    printf("sender=%s\nenvid=%s\nret=%d\nbody=%d\nsmtputf8=%d\n", str(qf.env.sender),
           str(qf.env.envid), qf.env.ret, qf.env.body_type, qf.env.smtputf8 ? 1 : 0);
    for (size_t i = 0; i < qf.env.nrcpts; i++)
        printf("rcpt=%s notify=%u orcpt=%s\n", qf.env.rcpts[i].addr, qf.env.rcpts[i].notify,
               str(qf.env.rcpts[i].orcpt));
    printf("flags=%u\n", (unsigned)qf.flags);
    printf("size=%llu\ncontent:\n", (unsigned long long)qf.content_size);
    fflush(stdout);
    queue_content_open(&qc, fd, &qf);
    while ((n = queue_content_read(&qc, buf, sizeof(buf), &why)) > 0)
        if (write(1, buf, (size_t)n) != n)
            return 1;
    queue_file_free(&qf);
    close(fd);
    return n < 0 ? 1 : 0;
}
