/*
 * master_ctlfile - Kaspersky's control files (reference §3.5): an empty
 * file created in [mailgw.path] ControlPath asks master for an action.
 *
 * Interface: master_ctlfile_poll(), called from master's one-second tick;
 * it looks every MASTER_CTLFILE_POLL seconds (nothing when ControlPath is
 * empty).
 *
 *   .c_stats                  stats (and StatFilename)
 *   .c_recv_on  .c_recv_off   recv-on  / recv-off  (smtpd)
 *   .c_avir_on  .c_avir_off   avir-on  / avir-off  (scand)
 *   .c_send_on  .c_send_off   send-on  / send-off  (qmgr)
 *   .c_db_reload              reload-bases         (scand)
 * A file found is removed first, then the action runs exactly as the
 * control-socket request of the same name (master_control_internal());
 * when it is done master logs "control file NAME: done" (or "failed:
 * REASON" with what the daemons said).
 *
 * Security: only a regular file (lstat: a symlink does not count) owned
 * by root or the mailgw user is obeyed.  Anything else under one of those
 * names is logged once ("ignored: ...") and left alone.  A missing
 * ControlPath is created 0750, owned by master's user and the group of
 * public/; one that cannot be read is logged once per change of reason.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/log.h"
#include "util/mem.h"

#define MASTER_CTLFILE_POLL 2       /* seconds between looks */

struct ctlfile {
    const char *name;
    const char *op;
    ino_t ignored_ino;          /* an ignored file already logged ... */
    struct timespec ignored_ctime;  /* ... as it was then */
};

static struct ctlfile ctlfiles[] = {
    { .name = ".c_stats", .op = "stats" },
    { .name = ".c_recv_on", .op = "recv-on" },
    { .name = ".c_recv_off", .op = "recv-off" },
    { .name = ".c_avir_on", .op = "avir-on" },
    { .name = ".c_avir_off", .op = "avir-off" },
    { .name = ".c_send_on", .op = "send-on" },
    { .name = ".c_send_off", .op = "send-off" },
    { .name = ".c_db_reload", .op = "reload-bases" },
};

static time_t ctlfile_last;
static int ctlfile_dir_errno;     /* last error logged for the directory */

static void ctlfile_done(const struct proto_msg *reply, void *arg)
{
    const struct ctlfile *cf = arg;
    const char *status = proto_get_str(reply, "status");
    const char *reason = proto_get_str(reply, "reason");
    const struct proto_attr *a;

    if (status != NULL && strcmp(status, "ok") == 0) {
        log_info("control file %s: done", cf->name);
        return;
    }
    /* The daemons' own lines say who failed ("qmgr: not running"). */
    for (size_t i = 0; (a = proto_get_nth(reply, "line", i)) != NULL; i++)
        if (a->type == PROTO_STR && memmem(a->value, a->len, ": ", 2) != NULL
            && (memmem(a->value, a->len, "error", 5) != NULL
                || memmem(a->value, a->len, "not running", 11) != NULL
                || memmem(a->value, a->len, "no answer", 9) != NULL))
            log_warn("control file %s: %.*s", cf->name, (int)a->len, (const char *)a->value);
    log_warn("control file %s: failed%s%s", cf->name, reason ? ": " : "", reason ? reason : "");
}

/* Who may ask: root and the mailgw user (master's own user when not root). */
static bool ctlfile_owner_ok(uid_t uid)
{
    return uid == 0 || uid == master.uid || uid == geteuid();
}

static void ctlfile_check(int dfd, const char *dir, struct ctlfile *cf)
{
    struct stat st;

    if (fstatat(dfd, cf->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT)
            log_warn("control file %s/%s: %m", dir, cf->name);
        cf->ignored_ino = 0;
        return;
    }
    if (!S_ISREG(st.st_mode) || !ctlfile_owner_ok(st.st_uid)) {
        if (cf->ignored_ino != st.st_ino || cf->ignored_ctime.tv_sec != st.st_ctim.tv_sec
            || cf->ignored_ctime.tv_nsec != st.st_ctim.tv_nsec)
            log_warn("control file %s/%s: ignored: %s", dir, cf->name,
                     !S_ISREG(st.st_mode) ? "not a regular file"
                                          : "owned by neither root nor the mailgw user");
        cf->ignored_ino = st.st_ino;
        cf->ignored_ctime = st.st_ctim;
        return;
    }
    cf->ignored_ino = 0;
    if (unlinkat(dfd, cf->name, 0) < 0) {
        log_warn("control file %s/%s: cannot remove it: %m; not acted on", dir, cf->name);
        return;
    }
    log_info("control file %s: %s", cf->name, cf->op);
    if (master_control_internal(cf->op, ctlfile_done, cf) < 0)
        log_warn("control file %s: failed: master is not ready", cf->name);
}

static int ctlfile_open_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dfd < 0 && errno == ENOENT) {
        gid_t group = master.have_admin_gid ? master.admin_gid : master.gid;
        if (mkdir(dir, 0750) == 0) {
            if (master.root && chown(dir, 0, group) < 0)
                log_warn("ControlPath %s: cannot chown: %m", dir);
            log_info("ControlPath %s: created", dir);
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dfd < 0) {
        if (ctlfile_dir_errno != errno)
            log_warn("ControlPath %s: %m", dir);
        ctlfile_dir_errno = errno;
        return -1;
    }
    ctlfile_dir_errno = 0;
    return dfd;
}

void master_ctlfile_poll(void)
{
    const char *dir = conf_str(master.conf, "mailgw.path", "ControlPath");
    time_t now = time(NULL);
    int dfd;

    if (dir == NULL || *dir == 0 || master.stopping)
        return;
    if (now - ctlfile_last < MASTER_CTLFILE_POLL && now >= ctlfile_last)
        return;
    ctlfile_last = now;
    dfd = ctlfile_open_dir(dir);
    if (dfd < 0)
        return;
    for (size_t i = 0; i < sizeof(ctlfiles) / sizeof(ctlfiles[0]); i++)
        ctlfile_check(dfd, dir, &ctlfiles[i]);
    close(dfd);
}
