/*
 * log - see log.h.  The line is formatted into a stack buffer (long lines
 * are cut with "..." rather than allocated, so logging works when memory
 * is short) and written with a single write(2) or syslog(3) call.
 */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static char log_prog[64] = "mailgw";
static enum log_dest log_where = LOG_DEST_STDERR;
static char log_path[1024];
static int log_fd = 2;
static int log_level = LOG_LEVEL_ACTIVITY;
static char log_host[256];
static pid_t log_pid;           /* cached: getpid is a system call per line */

static void log_pid_forget(void)
{
    log_pid = 0;
}

/* Our pid, cached; a forked child (scand's workers) forgets the parent's. */
static pid_t log_getpid(void)
{
    static bool hooked;

    if (!hooked) {
        (void)pthread_atfork(NULL, NULL, log_pid_forget);
        hooked = true;
    }
    if (log_pid == 0)
        log_pid = getpid();
    return log_pid;
}

const char *log_progname(void) { return log_prog; }
void log_set_level(int level) { log_level = level; }
int log_get_level(void) { return log_level; }

static void log_open_file(void)
{
    int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0) {
        /* Fall back to stderr rather than losing lines. */
        dprintf(2, "mailgw/%s: cannot open log file %s: %s\n", log_prog,
                log_path, strerror(errno));
        log_fd = 2;
        return;
    }
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
}

void log_open(const char *progname, enum log_dest dest, const char *path)
{
    snprintf(log_prog, sizeof(log_prog), "%s", progname);
    if (gethostname(log_host, sizeof(log_host) - 1) < 0)
        snprintf(log_host, sizeof(log_host), "localhost");
    log_where = dest;
    if (dest == LOG_DEST_SYSLOG) {
        static char ident[80];
        snprintf(ident, sizeof(ident), "mailgw/%s", log_prog);
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    } else if (dest == LOG_DEST_FILE && path != NULL) {
        snprintf(log_path, sizeof(log_path), "%s", path);
        log_open_file();
    } else {
        log_where = LOG_DEST_STDERR;
        log_fd = 2;
    }
}

void log_reopen(void)
{
    if (log_where == LOG_DEST_FILE)
        log_open_file();
}

static int syslog_priority(int level)
{
    switch (level) {
    case LOG_LEVEL_ERROR: return LOG_ERR;
    case LOG_LEVEL_WARN: return LOG_WARNING;
    case LOG_LEVEL_INFO: return LOG_NOTICE;
    case LOG_LEVEL_ACTIVITY: return LOG_INFO;
    default: return LOG_DEBUG;
    }
}

void log_vline(int level, const char *prefix, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    size_t off = 0;
    int n;
    int saved = errno;

    if (level > log_level && level != 0)
        return;
    if (log_where != LOG_DEST_SYSLOG) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        off = strftime(line, sizeof(line), "%b %e %H:%M:%S", &tm);
        n = snprintf(line + off, sizeof(line) - off, " %s mailgw/%s[%ld]: ",
                     log_host, log_prog, (long)log_getpid());
        off += (n > 0) ? (size_t)n : 0;
    }
    n = snprintf(line + off, sizeof(line) - off, "%s", prefix);
    off += (n > 0) ? (size_t)n : 0;
    errno = saved;
    n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(line) - off) {
        off = sizeof(line) - 5;
        memcpy(line + off, "...", 3);
        off += 3;
    } else {
        off += (size_t)n;
    }
    /* Never let a stray newline from data split one event into two. */
    for (size_t i = 0; i < off; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    if (log_where == LOG_DEST_SYSLOG) {
        line[off] = 0;
        syslog(syslog_priority(level), "%s", line);
    } else {
        line[off++] = '\n';
        ssize_t w = write(log_fd, line, off);
        (void)w;
    }
    errno = saved;
}

#define LOG_FN(name, level, prefix)                                           \
    void name(const char *fmt, ...)                                           \
    {                                                                         \
        va_list ap;                                                           \
        va_start(ap, fmt);                                                    \
        log_vline(level, prefix, fmt, ap);                                    \
        va_end(ap);                                                           \
    }

LOG_FN(log_debug, LOG_LEVEL_DEBUG, "")
LOG_FN(log_msg, LOG_LEVEL_ACTIVITY, "")
LOG_FN(log_info, LOG_LEVEL_INFO, "")
LOG_FN(log_warn, LOG_LEVEL_WARN, "warning: ")
LOG_FN(log_error, LOG_LEVEL_ERROR, "error: ")

noreturn void log_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vline(0, "fatal: ", fmt, ap);
    va_end(ap);
    exit(1);
}
