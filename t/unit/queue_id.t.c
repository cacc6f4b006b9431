/*
 * queue_id.t - queue IDs (lib/queue/queue_id.c): format, validation of
 * IDs from peers, arrival order, unique creation in a directory.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/queue_id.h"
#include "tap.h"

static int only_alnum(const char *s)
{
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
            return 0;
    }
    return 1;
}

static void test_format(void)
{
    char a[QUEUE_ID_SIZE], b[QUEUE_ID_SIZE], c[QUEUE_ID_SIZE];
    uint64_t t = 0;

    queue_id_make(a, 1700000000000000ULL, 0);
    queue_id_make(b, 1700000000000001ULL, UINT64_MAX);
    queue_id_make(c, 4102444800999999ULL, 12345);
    ok(strlen(a) == QUEUE_ID_MIN && only_alnum(a), "inode 0: %s, %zu chars", a, strlen(a));
    ok(strlen(b) == QUEUE_ID_MAX && only_alnum(b), "largest inode: %s, %zu chars", b, strlen(b));
    ok(queue_id_valid(a) && queue_id_valid(b) && queue_id_valid(c), "made IDs are valid");
    ok(strcmp(a, b) < 0 && strcmp(b, c) < 0, "IDs sort by arrival");
    ok(queue_id_arrival(c, &t) == 0 && t == 4102444800999999ULL, "arrival decoded from the ID");
}

static void test_invalid(void)
{
    static const char *const bad[] = {
        "", "ABC", "../../etc/passwd", "0123456789ab/", "0123456789AB.",
        "0123456789ABCDEFGHIJK", "0123456789 AB", "0123456789AB\n", ".new-1-2",
        "0123456789AB\xc3\xa9", "zzzzzzzzzzzzz",   /* microseconds out of range */
    };
    int accepted = 0;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (queue_id_valid(bad[i])) {
            tap_diag("accepted: %s", bad[i]);
            accepted++;
        }
    }
    is_int(accepted, 0, "malformed IDs rejected");
    ok(!queue_id_valid(NULL), "NULL rejected");
}

static void test_create(void)
{
    enum { N = 500 };
    char dir[] = "/tmp/queue_id.t.XXXXXX", prev[QUEUE_ID_SIZE] = "", id[QUEUE_ID_SIZE];
    int dirfd, bad = 0, files = 0;
    struct stat st;
    DIR *d;
    struct dirent *de;

    if (mkdtemp(dir) == NULL || (dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        ok(0, "temp dir");
        return;
    }
    for (int i = 0; i < N; i++) {
        int fd = queue_id_create(dirfd, id);
        if (fd < 0 || !queue_id_valid(id) || strncmp(prev, id, 10) > 0 || fstat(fd, &st) < 0 ||
            (st.st_mode & 0777) != 0600 || st.st_size != 0)
            bad++;
        if (fd >= 0)
            close(fd);
        memcpy(prev, id, sizeof id);
    }
    is_int(bad, 0, "created IDs valid, in arrival order, files 0600 and empty");
    d = fdopendir(dirfd);
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        files += queue_id_valid(de->d_name) ? 1 : 1000;
        unlinkat(dirfd, de->d_name, 0);
    }
    is_int(files, N, "one file per ID, no leftovers");
    if (d)
        closedir(d);
    rmdir(dir);
}

int main(void)
{
    test_format();
    test_invalid();
    test_create();
    return tap_done();
}
