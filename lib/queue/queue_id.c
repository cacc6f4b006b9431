/*
 * queue_id - make, check and create queue IDs (see queue_id.h).
 *
 * Interface: queue_id_make(), queue_id_valid(), queue_id_arrival(),
 * queue_id_create().
 *
 * queue_id_create() opens a hidden temporary name (".new-PID-N", never a
 * valid ID) with O_EXCL, reads the inode with fstat, and renames it to the
 * ID without replacing (renameat2 RENAME_NOREPLACE, or link + unlink where
 * the filesystem lacks it).  A collision (an inode reused within the same
 * microsecond) is retried with a fresh time.
 *
 * queue_id_recycle() gives a kept file (an inode whose message is gone)
 * a fresh ID instead of creating one: allocating an inode costs ext4 far
 * more than renaming one (it skips every recently deleted inode), and the
 * blocks are overwritten in place.  Its mode goes back to 0600 (qmgr
 * keeps marks in mode bits); the file keeps its old bytes; the
 * writer truncates to what it wrote (queue_writer_finish).  It is reused
 * only when no other open file description can write to it.
 *
 * Security: IDs from the network are only used after queue_id_valid():
 * the alphabet has no '/', '.', or control characters.
 */
#include "queue/queue_id.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static const char queue_id_digits[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#define QUEUE_ID_TIME_DIGITS 6
#define QUEUE_ID_USEC_DIGITS 4
#define QUEUE_ID_INODE_MIN 2
#define QUEUE_ID_INODE_MAX 10

static void queue_id_put_fixed(char *out, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = queue_id_digits[v % 62];
        v /= 62;
    }
}

/* Inode in 2..10 digits, most significant first. Inodes past 62^10 are
 * folded: uniqueness then rests on the no-replace rename. */
static size_t queue_id_put_inode(char *out, uint64_t inode)
{
    char tmp[QUEUE_ID_INODE_MAX];
    size_t n = 0;

    while ((inode > 0 || n < QUEUE_ID_INODE_MIN) && n < QUEUE_ID_INODE_MAX) {
        tmp[n++] = queue_id_digits[inode % 62];
        inode /= 62;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

void queue_id_make(char out[QUEUE_ID_SIZE], uint64_t time_us, uint64_t inode)
{
    size_t n = QUEUE_ID_TIME_DIGITS + QUEUE_ID_USEC_DIGITS;

    queue_id_put_fixed(out, time_us / 1000000, QUEUE_ID_TIME_DIGITS);
    queue_id_put_fixed(out + QUEUE_ID_TIME_DIGITS, time_us % 1000000, QUEUE_ID_USEC_DIGITS);
    n += queue_id_put_inode(out + n, inode);
    out[n] = 0;
}

static int queue_id_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 36;
    return -1;
}

bool queue_id_valid(const char *s)
{
    size_t n;

    if (s == NULL)
        return false;
    for (n = 0; s[n] != 0; n++) {
        if (n >= QUEUE_ID_MAX || queue_id_digit(s[n]) < 0)
            return false;
    }
    if (n < QUEUE_ID_MIN)
        return false;
    /* microseconds must be < 1000000 */
    return queue_id_arrival(s, &(uint64_t){0}) == 0;
}

int queue_id_arrival(const char *s, uint64_t *time_us)
{
    uint64_t sec = 0, usec = 0;
    size_t len = s ? strnlen(s, QUEUE_ID_MAX + 1) : 0;

    if (len < QUEUE_ID_MIN || len > QUEUE_ID_MAX)
        return -1;
    for (int i = 0; i < QUEUE_ID_TIME_DIGITS + QUEUE_ID_USEC_DIGITS; i++) {
        int d = queue_id_digit(s[i]);
        if (d < 0)
            return -1;
        if (i < QUEUE_ID_TIME_DIGITS)
            sec = sec * 62 + (uint64_t)d;
        else
            usec = usec * 62 + (uint64_t)d;
    }
    if (usec >= 1000000)
        return -1;
    *time_us = sec * 1000000 + usec;
    return 0;
}

static int queue_id_rename(int fromfd, const char *from, int tofd, const char *to)
{
    if (renameat2(fromfd, from, tofd, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* Filesystem without RENAME_NOREPLACE: link refuses to replace too. */
    if (linkat(fromfd, from, tofd, to, 0) < 0)
        return -1;
    (void)unlinkat(fromfd, from, 0);
    return 0;
}

/* Remove dirfd/name and close fd, keeping errno: a file that gets no ID. */
static int queue_id_drop(int dirfd, const char *name, int fd)
{
    int saved = errno;

    (void)unlinkat(dirfd, name, 0);
    close(fd);
    errno = saved;
    return -1;
}

/* Name the open file fromfd/name (inode ino) tofd/ID with a fresh time;
 * on failure the file is removed and fd closed. */
static int queue_id_name(int fromfd, const char *name, int tofd, int fd, uint64_t ino,
                         char id[QUEUE_ID_SIZE])
{
    struct timeval tv;

    for (int tries = 0; tries < 100; tries++) {
        gettimeofday(&tv, NULL);
        queue_id_make(id, (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec, ino);
        if (queue_id_rename(fromfd, name, tofd, id) == 0)
            return fd;
        if (errno != EEXIST)
            return queue_id_drop(fromfd, name, fd);
    }
    errno = EEXIST;
    return queue_id_drop(fromfd, name, fd);
}

int queue_id_create(int dirfd, char id[QUEUE_ID_SIZE])
{
    static unsigned counter;
    char tmpname[64];
    struct stat st;
    int fd;

    snprintf(tmpname, sizeof tmpname, ".new-%ld-%u", (long)getpid(), counter++);
    fd = openat(dirfd, tmpname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0)
        return queue_id_drop(dirfd, tmpname, fd);
    return queue_id_name(dirfd, tmpname, dirfd, fd, (uint64_t)st.st_ino, id);
}

/* Nobody else may hold the file open for writing: a write lease is
 * refused while another open file description can write to the inode
 * (fcntl(2) F_SETLEASE; in-flight fds on a socket count too), so a writer
 * that kept its fd can never reach the next message.  (Readers are
 * counted only on kernels with IMA; they see content only.) */
static bool queue_id_sole_opener(int fd)
{
    if (fcntl(fd, F_SETLEASE, F_WRLCK) < 0)
        return false;
    (void)fcntl(fd, F_SETLEASE, F_UNLCK);
    return true;
}

int queue_id_recycle(int sparefd, const char *name, int dirfd, char id[QUEUE_ID_SIZE])
{
    struct stat st;
    int fd = openat(sparefd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
        st.st_uid != geteuid() || !queue_id_sole_opener(fd) || fchmod(fd, 0600) < 0) {
        errno = EBUSY;
        return queue_id_drop(sparefd, name, fd);
    }
    return queue_id_name(sparefd, name, dirfd, fd, (uint64_t)st.st_ino, id);
}
