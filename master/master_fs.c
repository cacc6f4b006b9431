/*
 * master_fs - what master prepares on disk and on the network before any
 * daemon runs: the mailgw user, the queue tree, the TCP listeners of
 * [mailgw.network] ListenOn, the unix listeners in private/ and public/,
 * and the pid file.
 *
 * Interface: master_resolve_user(), master_make_tree(),
 * master_bind_listeners(), master_unix_listener(), master_pid_lock(),
 * master_pid_write(), master_pid_remove().  Errors are appended to err
 * (one line each) and the function returns -1; master decides whether
 * that is fatal (start) or only a failed reload.
 *
 * Security: the queue directories are (re)set to their owner and mode at
 * every start, so a wrong chmod does not persist; private/ is 0700 for the
 * mailgw user; public/ is 0710 root:AdminGroup (the User's group when
 * AdminGroup is empty) and the control socket 0660 in it.  The pid file
 * is protected by an flock() held for master's whole life, so a stale pid
 * file (master killed) never blocks a start and a pid reused by another
 * process is never mistaken for a running master.
 */
#include "master.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define LISTEN_BACKLOG 511

int master_resolve_user(struct master *m, struct buf *err)
{
    const char *user = conf_str(m->conf, "mailgw.options", "User");
    const char *group = conf_str(m->conf, "mailgw.options", "AdminGroup");

    m->root = geteuid() == 0;
    m->uid = getuid();
    m->gid = getgid();
    if (m->root) {
        struct passwd *pw = getpwnam(user);
        if (pw == NULL) {
            buf_printf(err, "[mailgw.options] User %s: no such user (create it, e.g. "
                       "useradd --system %s, or set User)\n", user, user);
            return -1;
        }
        if (pw->pw_uid == 0) {
            buf_printf(err, "[mailgw.options] User %s: must not be root\n", user);
            return -1;
        }
        m->uid = pw->pw_uid;
        m->gid = pw->pw_gid;
    }
    m->have_admin_gid = false;
    if (group != NULL && *group != 0) {
        struct group *gr = getgrnam(group);
        if (gr == NULL) {
            buf_printf(err, "[mailgw.options] AdminGroup %s: no such group\n", group);
            return -1;
        }
        m->admin_gid = gr->gr_gid;
        m->have_admin_gid = true;
    }
    return 0;
}

char *master_queue_file(const struct master *m, const char *rel)
{
    return xasprintf("%s/%s", m->queue_path, rel);
}

/* mkdir -p of a path's missing parents and itself (mode for new ones). */
static int master_mkdirs(const char *path, mode_t mode, struct buf *err)
{
    char *p = xstrdup(path);
    int rc = 0;

    for (char *s = p + 1; ; s++) {
        if (*s != '/' && *s != 0)
            continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            buf_printf(err, "cannot create directory %s: %s\n", p, strerror(errno));
            rc = -1;
            break;
        }
        *s = c;
        if (c == 0)
            break;
    }
    free(p);
    return rc;
}

static int master_own_dir(const struct master *m, const char *rel, mode_t mode,
                          uid_t uid, gid_t gid, struct buf *err)
{
    char *path = master_queue_file(m, rel);
    struct stat st;
    int rc = -1;

    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        buf_printf(err, "cannot create directory %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        buf_printf(err, "%s: not a directory\n", path);
        goto out;
    }
    if ((st.st_uid != uid || st.st_gid != gid) && lchown(path, uid, gid) < 0) {
        buf_printf(err, "cannot chown %s: %s\n", path, strerror(errno));
        goto out;
    }
    if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0) {
        buf_printf(err, "cannot chmod %s: %s\n", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(path);
    return rc;
}

/* The group of public/: AdminGroup, else the mailgw user's group. */
static gid_t master_public_gid(const struct master *m)
{
    return m->have_admin_gid ? m->admin_gid : m->gid;
}

int master_make_tree(struct master *m, struct buf *err)
{
    static const char *const queue_dirs[] = {
        "tmp", "incoming", "active", "deferred", "hold", "corrupt", "spare", "private",
        /* default QuarantinePath / BackupPath: the store daemon runs as
         * User and cannot create them under a root-owned QueuePath */
        "quarantine", "backup",
    };
    uid_t me = geteuid();
    gid_t mygid = getegid();

    if (master_mkdirs(m->queue_path, 0755, err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(queue_dirs) / sizeof(queue_dirs[0]); i++)
        if (master_own_dir(m, queue_dirs[i], 0700, m->uid, m->gid, err) < 0)
            return -1;
    if (master_own_dir(m, "public", 0710, me, master_public_gid(m), err) < 0)
        return -1;
    if (master_own_dir(m, "pid", 0755, me, mygid, err) < 0)
        return -1;
    return 0;
}

/* "1.2.3.4:25" or "[::1]:25" -> sockaddr. */
static int master_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon, *h = spec;
    size_t hlen;
    char *end;
    unsigned long port;

    colon = strrchr(spec, ':');
    if (colon == NULL)
        return -1;
    hlen = (size_t)(colon - spec);
    if (*spec == '[') {
        if (hlen < 2 || spec[hlen - 1] != ']')
            return -1;
        h = spec + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port == 0 || port > 65535)
        return -1;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
    } else {
        return -1;
    }
    return 0;
}

static int master_tcp_listener(const char *spec, struct buf *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1;

    if (master_parse_listen(spec, &ss, &len) < 0) {
        buf_printf(err, "ListenOn %s: not ADDRESS:PORT or [IPV6]:PORT\n", spec);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        buf_printf(err, "ListenOn %s: socket: %s\n", spec, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* [::]:25 and 0.0.0.0:25 may both be listed. */
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        buf_printf(err, "ListenOn %s: cannot listen: %s\n", spec, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Listeners for c's ListenOn.  One already open in m->listeners with the
 * same spec is reused (dup'ed), so a reload never closes a port that stays
 * configured and no connection is refused meanwhile. */
int master_bind_listeners(struct master *m, const struct conf *c,
                          struct master_listener *out, size_t *nout, struct buf *err)
{
    const char *const *items;
    size_t n = conf_list(c, "mailgw.network", "ListenOn", &items);

    *nout = 0;
    if (n > MASTER_MAX_LISTEN) {
        buf_printf(err, "ListenOn: at most %d addresses\n", MASTER_MAX_LISTEN);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int fd = -1;
        for (size_t j = 0; j < m->nlisteners && fd < 0; j++)
            if (strcmp(m->listeners[j].spec, items[i]) == 0)
                fd = fcntl(m->listeners[j].fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            fd = master_tcp_listener(items[i], err);
        if (fd < 0) {
            master_close_listeners(out, *nout);
            *nout = 0;
            return -1;
        }
        out[*nout].spec = xstrdup(items[i]);
        out[*nout].fd = fd;
        (*nout)++;
    }
    return 0;
}

void master_close_listeners(struct master_listener *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (l[i].fd >= 0)
            close(l[i].fd);
        free(l[i].spec);
        l[i].spec = NULL;
        l[i].fd = -1;
    }
}

int master_unix_listener(struct master *m, const char *rel, mode_t mode, gid_t group,
                         struct buf *err)
{
    char *path = master_queue_file(m, rel);
    struct sockaddr_un sun;
    int fd = -1;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) >= sizeof(sun.sun_path)) {
        buf_printf(err, "%s: socket path too long (max %zu)\n", path, sizeof(sun.sun_path) - 1);
        goto out;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        buf_printf(err, "%s: socket: %s\n", path, strerror(errno));
        goto out;
    }
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("cannot remove old socket %s: %m", path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, LISTEN_BACKLOG) < 0
        || chmod(path, mode) < 0) {
        buf_printf(err, "%s: cannot listen: %s\n", path, strerror(errno));
        close(fd);
        fd = -1;
        goto out;
    }
    if (m->root && chown(path, strncmp(rel, "public/", 7) == 0 ? 0 : m->uid, group) < 0) {
        buf_printf(err, "%s: cannot chown: %s\n", path, strerror(errno));
        close(fd);
        fd = -1;
    }
out:
    free(path);
    return fd;
}

static pid_t master_pid_read(int fd)
{
    char text[32];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);

    if (n <= 0)
        return 0;
    text[n] = 0;
    return (pid_t)strtol(text, NULL, 10);
}

int master_pid_lock(struct master *m, struct buf *err)
{
    int fd = open(m->pid_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    pid_t old;

    if (fd < 0) {
        buf_printf(err, "cannot open pid file %s: %s\n", m->pid_path, strerror(errno));
        return -1;
    }
    old = master_pid_read(fd);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            buf_printf(err, "mailgw is already running (pid %ld, pid file %s)\n",
                       (long)old, m->pid_path);
        else
            buf_printf(err, "cannot lock pid file %s: %s\n", m->pid_path, strerror(errno));
        close(fd);
        return -1;
    }
    m->stale_pid = old;     /* logged once the log is open */
    m->pid_fd = fd;
    return 0;
}

void master_pid_write(struct master *m)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());

    if (ftruncate(m->pid_fd, 0) < 0 || pwrite(m->pid_fd, text, (size_t)n, 0) != n)
        log_warn("cannot write pid file %s: %m", m->pid_path);
}

void master_pid_remove(struct master *m)
{
    if (m->pid_fd < 0)
        return;
    if (unlink(m->pid_path) < 0)
        log_warn("cannot remove pid file %s: %m", m->pid_path);
    close(m->pid_fd);
    m->pid_fd = -1;
}
