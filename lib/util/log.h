/*
 * log - one set of logging functions for every mailgw process.
 *
 * Destinations: syslog (facility mail, ident "mailgw/PROG"), a file
 * (LogFilename, opened O_APPEND so processes share it line by line), or
 * stderr (foreground mode).  File and stderr lines look like syslog's:
 *   "Nov 27 20:57:35 HOST mailgw/smtpd[123]: ID: client=..."
 * so pflogsumm-style tools read them.  Lines about a message start with its
 * queue ID (or NOQUEUE); warnings/errors/fatals get Postfix's
 * "warning: ", "error: ", "fatal: " prefixes.  %m works (glibc).
 *
 * Each line is written with one write(2), so concurrent writers never
 * interleave inside a line.  log_reopen() (SIGUSR1) reopens the file.
 */
#ifndef MAILGW_LOG_H
#define MAILGW_LOG_H

#include <stdarg.h>
#include <stdnoreturn.h>

enum log_dest { LOG_DEST_STDERR, LOG_DEST_SYSLOG, LOG_DEST_FILE };

/* Verbosity as Kaspersky's LogLevel: 1 errors, 2 warnings, 3 info,
 * 4 activity (per-message lines, default), 9 debug. */
enum log_level {
    LOG_LEVEL_ERROR = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_INFO = 3,
    LOG_LEVEL_ACTIVITY = 4,
    LOG_LEVEL_DEBUG = 9,
};

void log_open(const char *progname, enum log_dest dest, const char *path);
void log_set_level(int level);
int log_get_level(void);
void log_reopen(void);
const char *log_progname(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vline(int level, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
