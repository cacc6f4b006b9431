/*
 * quarantine - the store daemon (CONTRACTS.md "quarantine daemon"):
 * private state shared by its files.
 */
#ifndef MAILGW_QUARANTINE_H
#define MAILGW_QUARANTINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/proto.h"
#include "store/store.h"

#define QUAR_PROTO "quarantine"
#define QUAR_PROTO_VERSION 1

/* Error codes in replies: the CLI's exit statuses (reference §3.10). */
#define QUAR_E_DIR 2        /* directory unreadable */
#define QUAR_E_SYSTEM 3     /* system error */
#define QUAR_E_ACTION 4     /* requested action not performed */

struct server;
struct event_base;
struct event;

struct quar {
    struct server *srv;
    struct event_base *base;
    const char *queue_path;
    char *area_dir[STORE_NAREAS];   /* NULL: the area is off */
    long long max_age;              /* seconds, 0 = keep */
    bool have_admin_gid;
    gid_t admin_gid;
    int listen_fd[2];               /* [0] private, [1] public (-1 none) */
    struct event *ev_listen[2];
    struct event *ev_expire, *ev_stop;
    size_t nconns;
    bool stopping;
};

struct quar_conn {
    struct quar *q;
    bool public;
    bool hello;
    struct proto_conn pc;
    struct event *ev_read, *ev_write;
};

/* quarantine_conn.c */
void quar_listen_start(struct quar *q);
void quar_listen_stop(struct quar *q);
/* Queue a reply frame on the connection (flushed by the caller's loop). */
void quar_send(struct quar_conn *c, const struct proto_msg *m);

/* quarantine_ops.c: one request; replies queued with quar_send. */
void quar_request(struct quar_conn *c, struct proto_msg *req);
void quar_reply_error(struct quar_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Find an entry by ID in area (or in every area when area < 0).  Returns
 * the open fd with e filled and *found_area set, or -1. */
int quar_find(struct quar *q, int area, const char *id, struct store_entry *e,
              int *found_area, const char **why);
/* Remove entries older than age seconds from every area; the count. */
long quar_expire(struct quar *q, long long age);

/* quarantine_release.c: re-queue an entry through qmgr's commit
 * protocol.  0 and newid set, or -1 with *why. */
int quar_requeue(struct quar *q, int fd, const struct store_entry *e, bool noscan,
                 char *newid, size_t idsize, const char **why);

#endif
