/*
 * dsn_queue - the envelope of a report and its queue file: a report is
 * queued like any message (qmgr commits it with its ordinary commit).
 *
 * Interface: dsn_envelope_make(), dsn_envelope_free(), dsn_queue_write()
 * (dsn.h).
 *
 * The envelope: null sender "" (RFC 3461 §6.2: a report never gets a
 * report), one recipient = the original sender with NOTIFY=NEVER, no
 * ENVID, no RET; BODY=8BITMIME when the report holds 8-bit octets;
 * SMTPUTF8 when it holds raw UTF-8 addresses (or the sender is one).
 *
 * Diagnostics: dsn_queue_write returns -1 with the writer's static
 * reason (errno kept).  Nothing logs.
 */
#include "dsn/dsn_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

void dsn_envelope_make(struct dsn_envelope *de, const struct queue_envelope *orig,
                       const struct dsn_message *msg, uint64_t now_us)
{
    const char *sender = orig->sender ? orig->sender : "";

    memset(de, 0, sizeof *de);
    de->rcpt_addr = xstrdup(sender);
    de->rcpt.addr = de->rcpt_addr;
    de->rcpt.orcpt = NULL;
    de->rcpt.notify = QUEUE_NOTIFY_NEVER;
    de->rcpt.status = QUEUE_RCPT_PENDING;
    de->env.arrival_us = now_us;
    de->env.proto = "DSN";
    de->env.sender = "";
    de->env.ret = QUEUE_RET_NONE;
    de->env.body_type = msg->eight_bit ? QUEUE_BODY_8BITMIME : QUEUE_BODY_7BIT;
    de->env.smtputf8 = msg->smtputf8 || (orig->smtputf8 && dsn_has_8bit(sender, strlen(sender)));
    de->env.rcpts = &de->rcpt;
    de->env.nrcpts = 1;
}

void dsn_envelope_free(struct dsn_envelope *de)
{
    free(de->rcpt_addr);
    memset(de, 0, sizeof *de);
}

int dsn_queue_write(int fd, const struct dsn_envelope *de, const struct dsn_message *msg,
                    const char **why)
{
    struct queue_writer w;
    int saved;

    if (!de->rcpt_addr || !*de->rcpt_addr) {
        *why = "no bounce to <>";
        errno = EINVAL;
        return -1;
    }
    if (queue_writer_open(&w, fd) < 0) {
        *why = w.error ? w.error : "cannot start the queue file";
        return -1;
    }
    if (queue_writer_envelope(&w, &de->env) < 0 ||
        queue_writer_content(&w, msg->text.data, msg->text.len) < 0 ||
        queue_writer_finish(&w) < 0) {
        saved = errno;
        *why = w.error ? w.error : "cannot write the queue file";
        queue_writer_close(&w);
        errno = saved;
        return -1;
    }
    queue_writer_close(&w);
    return 0;
}
