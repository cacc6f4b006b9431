/*
 * mimetree - prints the MIME part tree of message files in the format of
 * the golden tests (t/mime/NAME.ref, see lib/mime/mime_dump.c).
 *
 * Usage: mimetree [-s] [-m] [-o OFFSET -l LENGTH] FILE...
 *   -s   MimeKit summary shape ("Content-Type: x/y" lines only)
 *   -m   FILE is an mbox: each message (split at "From " lines) is printed after a line "From ..."
 *   -o/-l  parse only that region of FILE (as scand does with the
 *        content region of a queue file)
 * Exit: 0, 1 when a file cannot be read, 2 on usage errors.
 * Output for several files: "== FILE" before each tree.
 */
#include "mime/mime.h"
#include "util/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mimetree_print(struct mime_msg *msg, int flags)
{
    struct buf out = BUF_INIT;

    mime_msg_dump(msg, &out, flags);
    fwrite(out.data ? out.data : "", 1, out.len, stdout);
    buf_free(&out);
    mime_msg_free(msg);
    return 0;
}

/* Next "From " line (mboxrd: body lines are escaped as ">From "). */
static size_t mimetree_mbox_next(const char *s, size_t len, size_t pos)
{
    for (size_t i = pos; i + 5 <= len; i++)
        if ((i == 0 || s[i - 1] == '\n') && memcmp(s + i, "From ", 5) == 0)
            return i;
    return len;
}

static int mimetree_mbox(int fd, size_t len, int flags)
{
    char *s = malloc(len + 1);
    size_t got = 0;

    if (s == NULL)
        return 1;
    while (got < len) {
        ssize_t r = pread(fd, s + got, len - got, (off_t)got);
        if (r <= 0) {
            free(s);
            return 1;
        }
        got += (size_t)r;
    }
    for (size_t pos = mimetree_mbox_next(s, len, 0); pos < len;) {
        size_t next = mimetree_mbox_next(s, len, pos + 5);
        const char *nl = memchr(s + pos, '\n', next - pos);
        size_t start = nl ? (size_t)(nl - s) + 1 : next;
        printf("%.*s\n", (int)(start - pos - (nl ? 1 : 0)), s + pos);
        mimetree_print(mime_msg_parse_mem(s + start, next - start, NULL), flags);
        pos = next;
    }
    free(s);
    return 0;
}

static int mimetree_file(const char *path, int flags, bool mbox, long long off,
                         long long len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "mimetree: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    if (len < 0 || off + len > st.st_size)
        len = st.st_size - off;
    int rc;
    if (mbox) {
        rc = mimetree_mbox(fd, (size_t)st.st_size, flags);
    } else {
        struct mime_msg *msg = mime_msg_parse_fd(fd, off, (size_t)len, NULL);
        rc = msg ? mimetree_print(msg, flags) : 1;
        if (msg == NULL)
            fprintf(stderr, "mimetree: %s: %s\n", path, strerror(errno));
    }
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    int c, flags = 0, rc = 0;
    bool mbox = false;
    long long off = 0, len = -1;

    while ((c = getopt(argc, argv, "smo:l:")) != -1) {
        switch (c) {
        case 's':
            flags |= MIME_DUMP_SUMMARY;
            break;
        case 'm':
            mbox = true;
            break;
        case 'o':
            off = atoll(optarg);
            break;
        case 'l':
            len = atoll(optarg);
            break;
        default:
            fprintf(stderr, "usage: mimetree [-s] [-m] [-o OFF -l LEN] FILE...\n");
            return 2;
        }
    }
    if (optind >= argc || off < 0)
        return 2;
    for (int i = optind; i < argc; i++) {
        if (argc - optind > 1)
            printf("== %s\n", argv[i]);
        if (mimetree_file(argv[i], flags, mbox, off, len) != 0)
            rc = 1;
    }
    return rc;
}
