/*
 * queue_id.t - queue IDs (lib/queue/queue_id.c): format, validation of
 * IDs from peers, arrival order, unique creation in a directory.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
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

/* queue_id_recycle: a kept file becomes a fresh ID with its inode and old
 * bytes; a file another process can still write to is refused. */
static void test_recycle(void)
{
    char dir[] = "/tmp/queue_id.t.XXXXXX", spare[300], tmp[300];
    char id1[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE], got[4] = "";
    int sparefd, tmpfd, fd, pfd[2];
    struct stat st1, st2;
    pid_t pid;

    if (mkdtemp(dir) == NULL) {
        ok(0, "temp dir");
        return;
    }
    snprintf(spare, sizeof spare, "%s/spare", dir);
    snprintf(tmp, sizeof tmp, "%s/tmp", dir);
    mkdir(spare, 0700);
    mkdir(tmp, 0700);
    sparefd = open(spare, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    tmpfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fd = queue_id_create(tmpfd, id1);
    ok(fd >= 0 && write(fd, "old", 3) == 3 && fchmod(fd, 0710) == 0 && fstat(fd, &st1) == 0,
       "a queue file with mode marks");
    close(fd);
    ok(renameat(tmpfd, id1, sparefd, ".s-1") == 0, "kept as a spare");
    fd = queue_id_recycle(sparefd, ".s-1", tmpfd, id2);
    ok(fd >= 0 && queue_id_valid(id2) && strcmp(id1, id2) != 0, "recycled under a new ID %s", id2);
    ok(fd >= 0 && fstat(fd, &st2) == 0 && st1.st_ino == st2.st_ino && pread(fd, got, 3, 0) == 3 &&
       memcmp(got, "old", 3) == 0, "same inode, old bytes kept for the writer to overwrite");
    ok(fd >= 0 && (st2.st_mode & 07777) == 0600, "mode marks cleared (0%o)",
       (unsigned)(st2.st_mode & 07777));
    ok(faccessat(sparefd, ".s-1", F_OK, 0) < 0 && faccessat(tmpfd, id2, F_OK, 0) == 0,
       "moved from spare/ to tmp/ID");
    close(fd);

    /* another process holds it open for writing: never reused */
    ok(renameat(tmpfd, id2, sparefd, ".s-2") == 0 && pipe(pfd) == 0, "kept again");
    if ((pid = fork()) == 0) {
        int w = openat(sparefd, ".s-2", O_WRONLY);
        close(pfd[0]);
        (void)write(pfd[1], w >= 0 ? "y" : "n", 1);
        pause();                        /* until the parent kills it */
        _exit(0);
    }
    close(pfd[1]);
    ok(read(pfd[0], got, 1) == 1 && got[0] == 'y', "a writer holds the spare");
    errno = 0;
    fd = queue_id_recycle(sparefd, ".s-2", tmpfd, id1);
    ok(fd < 0 && errno == EBUSY, "spare with another writer refused (errno %d)", errno);
    ok(faccessat(sparefd, ".s-2", F_OK, 0) < 0, "refused spare removed");
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    close(pfd[0]);
    if (fd >= 0)
        close(fd);

    /* not a plain file: refused */
    ok(symlinkat("/etc/passwd", sparefd, ".s-3") == 0, "a symlink in spare/");
    ok(queue_id_recycle(sparefd, ".s-3", tmpfd, id1) < 0, "symlink spare refused");
    close(sparefd);
    close(tmpfd);
    unlinkat(AT_FDCWD, spare, AT_REMOVEDIR);
    unlinkat(AT_FDCWD, tmp, AT_REMOVEDIR);
    rmdir(dir);
}

int main(void)
{
    test_recycle();
    test_format();
    test_invalid();
    test_create();
    return tap_done();
}
