/*
 * master_stats - the statistics file of reference §3.7: the counters every
 * daemon answers to "stats", under Kaspersky's names, summed over the
 * daemons, written to [mailgw.options] StatFilename.
 *
 * Interface: master_stats_new(), master_stats_add() (one daemon's
 * answer), master_stats_finish() (the name=value lines, and the file when
 * StatFilename is set), master_stats_free().
 *
 * What is written: time_initialized (master's start, unix time),
 * time_initialized_iso (the same, ISO 8601 local time), time_processing
 * (seconds since), then every counter the reference lists, in its order,
 * 0 when no daemon counts it; then every other mta_* / antiviral_*
 * integer a daemon reported (scand's antiviral_scanned_messages, ...) in
 * the order they came.  A counter reported by several daemons (the
 * resolver counters of smtpd and smtp) is their sum.
 * mta_stored_messages_current is qmgr's incoming + active + deferred +
 * hold.  Other attributes (qmgr's committed, sessions ...) stay in the
 * per-daemon lines of `mailgw stats` only.
 *
 * The file is replaced atomically: written to NAME.tmp.PID (O_EXCL,
 * O_NOFOLLOW, 0644), fsync()ed, renamed over NAME.  Failures are
 * returned with the reason; nothing is fatal.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define STATS_MAX_EXTRA 64

/* Reference §3.7, in its order. */
static const char *const stats_names[] = {
    "mta_received_messages",
    "mta_received_bytes",
    "mta_received_recipients",
    "mta_sent_messages",
    "mta_sent_bytes",
    "mta_sent_recipients",
    "mta_stored_messages_current",
    "mta_incoming_connections_total",
    "mta_incoming_connections_current",
    "mta_incoming_connections_maximum",
    "mta_incoming_connections_errors",
    "mta_outgoing_connections_total",
    "mta_outgoing_connections_current",
    "mta_outgoing_connections_maximum",
    "mta_outgoing_connection_errors",
    "mta_outgoing_connections_failed_total",
    "mta_outgoing_connections_failed_through_cache",
    "mta_routing_queries_total",
    "mta_dns_queries_total",
    "mta_dns_queries_through_cache",
    "mta_dns_queries_failed",
    "mta_receivings_refused_total",
    "mta_receivings_refused_for_message_size_limit",
    "mta_receivings_refused_for_session_size_limit",
    "mta_receivings_refused_for_hops_limit",
    "mta_receivings_refused_for_messages_per_session_limit",
    "mta_sendings_failed_total",
    "mta_sendings_failed_for_message_size_limit",
    "mta_sendings_failed_for_8bitmime",
    "mta_malformed_messages",
    "mta_dsn_generated",
    "antiviral_checking_sessions_current",
};
#define STATS_NNAMES (sizeof(stats_names) / sizeof(stats_names[0]))

/* qmgr's queue directories that hold messages still to be handled. */
static const char *const stats_stored_dirs[] = { "incoming", "active", "deferred", "hold" };

struct master_stats {
    int64_t value[STATS_NNAMES];
    char *extra_name[STATS_MAX_EXTRA];
    int64_t extra_value[STATS_MAX_EXTRA];
    size_t nextra;
};

struct master_stats *master_stats_new(void)
{
    return xcalloc(1, sizeof(struct master_stats));
}

void master_stats_free(struct master_stats *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nextra; i++)
        free(st->extra_name[i]);
    free(st);
}

static bool stats_kmg_name(const char *name)
{
    return strncmp(name, "mta_", 4) == 0 || strncmp(name, "antiviral_", 10) == 0;
}

static void stats_add_one(struct master_stats *st, const char *name, int64_t v)
{
    for (size_t i = 0; i < STATS_NNAMES; i++) {
        if (strcmp(stats_names[i], name) == 0) {
            st->value[i] += v;
            return;
        }
    }
    for (size_t i = 0; i < st->nextra; i++) {
        if (strcmp(st->extra_name[i], name) == 0) {
            st->extra_value[i] += v;
            return;
        }
    }
    if (st->nextra < STATS_MAX_EXTRA) {
        st->extra_name[st->nextra] = xstrdup(name);
        st->extra_value[st->nextra++] = v;
    }
}

void master_stats_add(struct master_stats *st, const char *daemon, const struct proto_msg *m)
{
    bool qmgr = strcmp(daemon, "qmgr") == 0;

    for (size_t i = 0; i < m->nattrs; i++) {
        const struct proto_attr *a = &m->attrs[i];
        if (a->type != PROTO_INT || strcmp(a->name, "reqid") == 0)
            continue;
        if (stats_kmg_name(a->name)) {
            stats_add_one(st, a->name, a->num);
            continue;
        }
        for (size_t k = 0; qmgr && k < sizeof(stats_stored_dirs) / sizeof(stats_stored_dirs[0]);
             k++)
            if (strcmp(a->name, stats_stored_dirs[k]) == 0)
                stats_add_one(st, "mta_stored_messages_current", a->num);
    }
}

/* ISO 8601 local time with the offset as +hh:mm. */
static void stats_iso_time(time_t t, char *out, size_t size)
{
    struct tm tm;
    char zone[8];
    size_t n;

    localtime_r(&t, &tm);
    n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    if (strftime(zone, sizeof(zone), "%z", &tm) == 5)
        snprintf(out + n, size - n, "%.3s:%.2s", zone, zone + 3);
}

static void stats_text(const struct master_stats *st, struct buf *text)
{
    time_t now = time(NULL);
    char iso[40] = "";

    stats_iso_time(master.started, iso, sizeof(iso));
    buf_printf(text, "time_initialized=%lld\n", (long long)master.started);
    buf_printf(text, "time_initialized_iso=%s\n", iso);
    buf_printf(text, "time_processing=%lld\n", (long long)(now - master.started));
    for (size_t i = 0; i < STATS_NNAMES; i++)
        buf_printf(text, "%s=%lld\n", stats_names[i], (long long)st->value[i]);
    for (size_t i = 0; i < st->nextra; i++)
        buf_printf(text, "%s=%lld\n", st->extra_name[i], (long long)st->extra_value[i]);
}

static int stats_write_all(int fd, const struct buf *text)
{
    size_t off = 0;

    while (off < text->len) {
        ssize_t n = write(fd, text->data + off, text->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return fsync(fd);
}

/* Write text to path through a temporary file and rename. */
static int stats_write_file(const char *path, const struct buf *text, struct buf *err)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(tmp, flags, 0644);
    int rc = -1;

    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
        fd = open(tmp, flags, 0644);
    if (fd < 0) {
        buf_printf(err, "StatFilename %s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    if (stats_write_all(fd, text) < 0)
        buf_printf(err, "StatFilename %s: cannot write %s: %s", path, tmp, strerror(errno));
    else if (rename(tmp, path) < 0)
        buf_printf(err, "StatFilename %s: cannot rename %s: %s", path, tmp, strerror(errno));
    else
        rc = 0;
    close(fd);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

int master_stats_finish(const struct master_stats *st, struct proto_msg *out, struct buf *err)
{
    const char *path = conf_str(master.conf, "mailgw.options", "StatFilename");
    struct buf text = BUF_INIT;
    int rc = 0;

    stats_text(st, &text);
    for (char *l = text.data, *nl; l != NULL && *l; l = nl + 1) {
        nl = strchr(l, '\n');
        proto_put_strn(out, "line", l, (size_t)(nl - l));
    }
    if (path != NULL && *path != 0) {
        rc = stats_write_file(path, &text, err);
        if (rc < 0)
            log_warn("%s", err->data);
        else
            log_info("statistics written to %s", path);
    }
    buf_free(&text);
    return rc;
}
