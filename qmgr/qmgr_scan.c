/*
 * qmgr_scan - start-up recovery of the queue (DESIGN §4).
 *
 * Interface: qmgr_scan_open_dirs(), qmgr_scan_startup(),
 * qmgr_scan_to_corrupt().
 *
 * At start qmgr owns the queue alone (master starts one qmgr; smtpd cannot
 * commit without it), so:
 *   - every tmp/ file is removed: it was never acknowledged (no 250 was
 *     sent for it), so the client will retry;
 *   - every file in incoming/ active/ deferred/ hold/ is parsed with the
 *     queue file reader; a malformed one is renamed to corrupt/ (never
 *     deleted: an administrator may want it) with a warning giving the
 *     reason; the others are counted, and incoming/ ones are handed to
 *     qmgr_incoming_ready() as if just committed; active/ ones (being
 *     delivered when qmgr stopped) are scheduled again; deferred/ ones
 *     keep their retry time (the file's mtime); hold/ ones wait.
 * Every directory that lost or gained an entry is fsync()ed once at the
 * end.
 *
 * Diagnostics: a queue tree that cannot be created or opened is fatal
 * (qmgr must not run without its queue).  Problems with single files are
 * warnings.  Names that are not queue IDs are left alone with a warning.
 *
 * Security: file names come from our own directories but are still
 * checked with queue_id_valid() before use; files are opened with
 * O_NOFOLLOW so a planted symlink is not followed.
 */
#include "qmgr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "util/log.h"

const char *const qmgr_dir_names[QMGR_NDIRS] = {
    [QMGR_TMP] = "tmp",           [QMGR_INCOMING] = "incoming", [QMGR_ACTIVE] = "active",
    [QMGR_DEFERRED] = "deferred", [QMGR_HOLD] = "hold",         [QMGR_CORRUPT] = "corrupt",
    [QMGR_SPARE] = "spare",
};

static int qmgr_scan_open_dir(int at, const char *path, const char *name)
{
    int fd;

    if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
        log_fatal("cannot create queue directory %s/%s: %m", path, name);
    fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        log_fatal("cannot open queue directory %s/%s: %m", path, name);
    return fd;
}

void qmgr_scan_open_dirs(struct qmgr *q)
{
    if (mkdir(q->queue_path, 0700) < 0 && errno != EEXIST)
        log_fatal("cannot create queue directory %s: %m", q->queue_path);
    q->queue_fd = open(q->queue_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (q->queue_fd < 0)
        log_fatal("cannot open queue directory %s: %m", q->queue_path);
    for (int i = 0; i < QMGR_NDIRS; i++)
        q->dir_fd[i] = qmgr_scan_open_dir(q->queue_fd, q->queue_path, qmgr_dir_names[i]);
}

static void qmgr_scan_sync_dir(struct qmgr *q, enum qmgr_dir d)
{
    if (fsync(q->dir_fd[d]) < 0)
        log_warn("fsync %s/%s: %m", q->queue_path, qmgr_dir_names[d]);
}

/* Calls fn for every entry of dir (but . and ..); the DIR uses a dup of
 * the directory fd so the original stays open. */
static void qmgr_scan_each(struct qmgr *q, enum qmgr_dir d,
                           void (*fn)(struct qmgr *, enum qmgr_dir, const char *, bool *),
                           bool *changed)
{
    int fd = dup(q->dir_fd[d]);
    DIR *dir;
    struct dirent *de;

    if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
        log_warn("cannot read %s/%s: %m", q->queue_path, qmgr_dir_names[d]);
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(dir);
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        fn(q, d, de->d_name, changed);
    }
    closedir(dir);
}

static void qmgr_scan_tmp_one(struct qmgr *q, enum qmgr_dir d, const char *name, bool *changed)
{
    if (unlinkat(q->dir_fd[d], name, 0) < 0) {
        log_warn("cannot remove %s/tmp/%s: %m", q->queue_path, name);
        return;
    }
    log_debug("removed unfinished queue file tmp/%s", name);
    q->count[QMGR_TMP]++;   /* counts removals here; reset by the caller */
    *changed = true;
}

/* Spares are not kept over a restart: the pool refills as mail is done. */
static void qmgr_scan_spare_one(struct qmgr *q, enum qmgr_dir d, const char *name, bool *changed)
{
    if (unlinkat(q->dir_fd[d], name, 0) < 0)
        log_warn("cannot remove %s/spare/%s: %m", q->queue_path, name);
    *changed = true;
}

/* Never replace an older corrupt file of the same name; a filesystem
 * without RENAME_NOREPLACE gets a plain rename (IDs are unique anyway). */
static int qmgr_scan_rename(struct qmgr *q, enum qmgr_dir from, const char *id)
{
    if (renameat2(q->dir_fd[from], id, q->dir_fd[QMGR_CORRUPT], id, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    return renameat(q->dir_fd[from], id, q->dir_fd[QMGR_CORRUPT], id);
}

int qmgr_scan_to_corrupt(struct qmgr *q, enum qmgr_dir from, const char *id, const char *why)
{
    if (qmgr_scan_rename(q, from, id) < 0) {
        log_warn("%s: malformed queue file %s/%s (%s): cannot move it to corrupt/: %m", id,
                 qmgr_dir_names[from], id, why);
        return -1;
    }
    log_warn("%s: malformed queue file %s/%s (%s): moved to corrupt/", id,
             qmgr_dir_names[from], id, why);
    q->count[QMGR_CORRUPT]++;
    return 0;
}

/* 0 valid, -1 malformed (*why set), -2 could not be checked (I/O).
 * *mtime gets the file's modification time (deferred/: the retry time). */
static int qmgr_scan_check(struct qmgr *q, enum qmgr_dir d, const char *id, const char **why,
                           time_t *mtime, uint32_t *flags)
{
    struct stat st;
    struct queue_file qf;
    int fd = openat(q->dir_fd[d], id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    int rc;

    if (fd < 0) {
        *why = errno == ELOOP ? "symbolic link" : NULL;
        if (errno != ELOOP)
            log_warn("%s: cannot open %s/%s: %m", id, qmgr_dir_names[d], id);
        return errno == ELOOP ? -1 : -2;
    }
    rc = queue_file_read(fd, &qf, why);
    *flags = qf.flags;
    queue_file_free(&qf);
    *mtime = fstat(fd, &st) == 0 ? st.st_mtime : 0;
    close(fd);
    return rc;
}

static void qmgr_scan_queue_one(struct qmgr *q, enum qmgr_dir d, const char *name, bool *changed)
{
    const char *why = NULL;
    time_t mtime = 0;
    uint32_t flags = 0;
    int rc;

    if (!queue_id_valid(name)) {
        log_warn("unexpected file %s/%s/%s left alone", q->queue_path, qmgr_dir_names[d], name);
        return;
    }
    rc = qmgr_scan_check(q, d, name, &why, &mtime, &flags);
    if (rc == -1) {
        if (qmgr_scan_to_corrupt(q, d, name, why) == 0)
            *changed = true;
        return;
    }
    q->count[d]++;
    if (d == QMGR_INCOMING && rc == 0 && (flags & QUEUE_FLAG_NOSCAN))
        qmgr_incoming_ready_released(q, name);
    else if (d == QMGR_INCOMING && rc == 0)
        qmgr_incoming_ready(q, name);
    else if (d != QMGR_INCOMING)
        qmgr_msg_add(q, name, d)->next_try = d == QMGR_DEFERRED ? mtime : 0;
}

/* active/ files were being delivered when qmgr stopped: schedule them
 * again (after the directory scans, so moves cannot meet the scans). */
static void qmgr_scan_reactivate(struct qmgr *q)
{
    size_t n;
    struct qmgr_msg **all = qmgr_msg_all(q, &n);

    for (size_t i = 0; i < n; i++) {
        if (all[i]->dir == QMGR_ACTIVE && qmgr_msg_load(q, all[i]) == 0)
            qmgr_sched_message(q, all[i]);
    }
    free(all);
    qmgr_msg_wake(q);
}

static void qmgr_scan_count_one(struct qmgr *q, enum qmgr_dir d, const char *name, bool *changed)
{
    q->count[d]++;
}

void qmgr_scan_startup(struct qmgr *q)
{
    static const enum qmgr_dir queues[] = { QMGR_INCOMING, QMGR_ACTIVE, QMGR_DEFERRED, QMGR_HOLD };
    bool changed = false, moved = false;
    size_t removed;

    memset(q->count, 0, sizeof q->count);
    qmgr_scan_each(q, QMGR_TMP, qmgr_scan_tmp_one, &changed);
    removed = q->count[QMGR_TMP];
    q->count[QMGR_TMP] = 0;
    if (changed)
        qmgr_scan_sync_dir(q, QMGR_TMP);
    qmgr_spare_init(q);
    changed = false;
    qmgr_scan_each(q, QMGR_SPARE, qmgr_scan_spare_one, &changed);
    qmgr_scan_each(q, QMGR_CORRUPT, qmgr_scan_count_one, &moved);
    for (size_t i = 0; i < sizeof queues / sizeof queues[0]; i++) {
        changed = false;
        qmgr_scan_each(q, queues[i], qmgr_scan_queue_one, &changed);
        if (changed) {
            qmgr_scan_sync_dir(q, queues[i]);
            moved = true;
        }
    }
    if (moved)
        qmgr_scan_sync_dir(q, QMGR_CORRUPT);
    qmgr_scan_reactivate(q);
    log_info("queue %s: removed %zu unfinished tmp files; incoming %zu, active %zu, "
             "deferred %zu, hold %zu, corrupt %zu",
             q->queue_path, removed, q->count[QMGR_INCOMING], q->count[QMGR_ACTIVE],
             q->count[QMGR_DEFERRED], q->count[QMGR_HOLD], q->count[QMGR_CORRUPT]);
}
