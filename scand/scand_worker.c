/*
 * scand_worker - the life of one scanning worker, forked by the pool
 * parent with the compiled engine already in memory (shared
 * copy-on-write).
 *
 * Interface: scand_worker_main() (never returns).
 *
 * Confinement, in this order: drop the parent's fds it does not need;
 * RLIMIT_AS = what the process maps now (the engine) + WorkerMemoryLimit;
 * when scand was started as root, chroot into the private temporary
 * directory the parent made for this worker (the daemon skeleton has
 * already dropped root, so the chroot is done inside a new user namespace
 * that maps only our own uid, with a mount namespace whose tmpfs over
 * that directory (at most WorkerMemoryLimit) keeps libclamav's temporary
 * files in memory; then every capability is dropped and no_new_privs
 * set); without user namespaces the worker logs a warning and runs
 * unconfined by chroot.  Before each message RLIMIT_CPU is set
 * to the CPU time used so far plus ScanTimeout plus a margin.
 *
 * Loop: poll the shared non-blocking listener (at most MaxIdleTime),
 * accept, note "busy" to the parent, serve the one request, note "idle".
 * Exit 0 after MaxMessagesPerProcess messages, after MaxIdleTime idle, on
 * SIGTERM (after the current message: the parent rotates workers this
 * way on reload-bases) or when the parent is gone.
 */
#include "scand.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

#define SCAND_CPU_MARGIN 5

static volatile sig_atomic_t scand_worker_term;

static void scand_worker_on_term(int sig)
{
    scand_worker_term = 1;
}

static void scand_worker_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = scand_worker_on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);       /* no SA_RESTART: poll() wakes */
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGUSR1, &sa, NULL);       /* log reopen: workers are short-lived */
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
}

/* Close what the parent holds that a worker must not: the status
 * channel to master and the parent's end of the notes pipe and event
 * loop.  stdio, the log and our own fds stay. */
static void scand_worker_close_fds(const struct scand_worker_args *a)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;

    if (a->srv->status_fd >= 0)
        close(a->srv->status_fd);
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        int fd = atoi(de->d_name);
        int fl;
        if (fd <= 2 || fd == dirfd(d) || fd == a->listen_fd || fd == a->note_fd)
            continue;
        /* The parent's event loop and pipes are close-on-exec and not a
         * file or a socket we log to; the log file is O_APPEND. */
        fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && (fl & O_APPEND))
            continue;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int type = 0;
        socklen_t tlen = sizeof(type);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX
            && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_DGRAM)
            continue;                   /* syslog */
        close(fd);
    }
    closedir(d);
}

static unsigned long long scand_vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long pages = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu", &pages) != 1)
        pages = 0;
    fclose(f);
    return pages * (unsigned long long)sysconf(_SC_PAGESIZE);
}

static void scand_worker_limit_memory(uint64_t extra)
{
    unsigned long long vm = scand_vm_size();
    struct rlimit rl;

    if (vm == 0 || extra == 0)
        return;
    rl.rlim_cur = rl.rlim_max = (rlim_t)(vm + extra);
    if (setrlimit(RLIMIT_AS, &rl) < 0)
        log_warn("worker: RLIMIT_AS: %m");
}

static void scand_worker_limit_cpu(unsigned scan_timeout)
{
    struct rusage ru;
    struct rlimit rl;

    if (getrusage(RUSAGE_SELF, &ru) < 0 || getrlimit(RLIMIT_CPU, &rl) < 0)
        return;
    rlim_t used = (rlim_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1);
    rlim_t want = used + scan_timeout + SCAND_CPU_MARGIN;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_CPU, &rl) < 0)
        log_warn("worker: RLIMIT_CPU: %m");
}

static int scand_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int scand_drop_caps(void)
{
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];

    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -1;
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/* Inside our user namespace: a mount namespace of our own and a tmpfs of
 * at most size bytes over dir, so libclamav's per-scan directories and
 * files (one mkdir and several creates per message) cost no disk inode:
 * on ext4 every allocation skips the recently deleted ones, a quarter of
 * a worker's CPU.  It vanishes with the worker.  Failure leaves dir as it
 * is (on disk): 0 / -1. */
static int scand_worker_tmpfs(const char *dir, uint64_t size)
{
    char opts[64];

    if (size == 0 || unshare(CLONE_NEWNS) < 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -1;
    snprintf(opts, sizeof(opts), "size=%llu,mode=0700", (unsigned long long)size);
    return mount("scand", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts);
}

/* chroot without root: a user namespace mapping only ourselves. */
static int scand_worker_chroot(const char *dir, uint64_t tmp_size)
{
    char map[64];
    uid_t uid = getuid();
    gid_t gid = getgid();

    tzset();                    /* log timestamps need the zone outside */
    /* After the drop from root the process is not dumpable, which makes
     * /proc/self/uid_map root's; dumpable again just for the maps. */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0 || unshare(CLONE_NEWUSER) < 0)
        goto fail;
    if (scand_write_file("/proc/self/setgroups", "deny") < 0)
        goto fail;
    snprintf(map, sizeof(map), "%lu %lu 1", (unsigned long)uid, (unsigned long)uid);
    if (scand_write_file("/proc/self/uid_map", map) < 0)
        goto fail;
    snprintf(map, sizeof(map), "%lu %lu 1", (unsigned long)gid, (unsigned long)gid);
    if (scand_write_file("/proc/self/gid_map", map) < 0)
        goto fail;
    if (scand_worker_tmpfs(dir, tmp_size) < 0)
        log_debug("worker: no tmpfs over %s (%m): temporary files on disk", dir);
    if (chroot(dir) < 0 || chdir("/") < 0)
        goto fail;
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return scand_drop_caps();
fail:
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return -1;
}

static void scand_note(const struct scand_worker_args *a, int kind)
{
    struct scand_note n = { getpid(), kind };

    /* Smaller than PIPE_BUF: atomic.  A full pipe only delays the
     * parent's view; scanning goes on. */
    if (write(a->note_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_debug("worker: note to parent: %m");
}

/* Wait for a connection; 1 = got one in *sock, 0 = idle too long,
 * -1 = asked to stop. */
static int scand_worker_accept(const struct scand_worker_args *a, int *sock)
{
    time_t idle_since = time(NULL);
    struct pollfd pfd = { a->listen_fd, POLLIN, 0 };

    for (;;) {
        if (scand_worker_term || getppid() == 1)
            return -1;
        time_t waited = time(NULL) - idle_since;
        if (a->max_idle > 0 && waited >= (time_t)a->max_idle)
            return 0;
        int r = poll(&pfd, 1, 1000);
        if (r <= 0)
            continue;
        *sock = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (*sock >= 0)
            return 1;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
            && errno != ECONNABORTED)
            log_warn("worker: accept: %m");
    }
}

static void scand_worker_setup(const struct scand_worker_args *a, struct scand_ctx *ctx)
{
    scand_worker_signals();
    scand_worker_close_fds(a);
    ctx->engine = a->engine;
    ctx->conf = a->srv->conf;
    scand_filter_load(&ctx->filter, a->srv->conf);
    ctx->nfilters = conf_group_count(a->srv->conf) + 1;
    ctx->filters = xcalloc(ctx->nfilters, sizeof(*ctx->filters));
    for (size_t k = 0; k < ctx->nfilters; k++)
        scand_filter_load_group(&ctx->filters[k], a->srv->conf, (int)k - 1);
    ctx->tmpdir = a->tmpdir;
    if (a->chroot) {
        if (scand_worker_chroot(a->tmpdir, a->mem_limit) == 0)
            ctx->tmpdir = "/";
        else
            log_warn("worker: cannot chroot to %s (%m): running without chroot", a->tmpdir);
    }
    if (ctx->engine != NULL)
        scand_engine_set_tmpdir(ctx->engine, ctx->tmpdir);
    scand_worker_limit_memory(a->mem_limit);
}

void scand_worker_main(const struct scand_worker_args *a)
{
    struct scand_ctx ctx;
    unsigned served = 0;
    int sock = -1, r;

    memset(&ctx, 0, sizeof(ctx));
    scand_worker_setup(a, &ctx);
    while (served < a->max_messages) {
        r = scand_worker_accept(a, &sock);
        if (r <= 0)
            break;
        scand_note(a, SCAND_NOTE_BUSY);
        scand_count(a->sh, SC_SESSIONS_CURRENT, 1);
        scand_worker_limit_cpu(a->scan_timeout);
        scand_request_serve(&ctx, a->sh, sock, a->scan_timeout);
        close(sock);
        scand_count(a->sh, SC_SESSIONS_CURRENT, -1);
        scand_note(a, SCAND_NOTE_IDLE);
        served++;
    }
    log_debug("worker: exiting after %u messages", served);
    _exit(0);
}
