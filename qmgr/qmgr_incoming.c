/*
 * qmgr_incoming - the hand-off point after a message is durably queued.
 *
 * Interface: qmgr_incoming_ready(q, id), qmgr_incoming_ready_noscan(),
 * qmgr_incoming_ready_released().
 *
 * Called once per message that is in incoming/ and fsync()ed: right after
 * a commit was acknowledged, at start for every valid incoming/ file, and
 * for the reports qmgr queues itself.  The message joins the in-memory
 * table and the waiting list; the run loop (qmgr_msg.c) takes it on at
 * once: to the scan step (qmgr_scanstep.c) when scanning is on, then to
 * active/ and delivery.  Reports qmgr made and messages an administrator
 * released from quarantine (the flag is in their queue file, so it
 * survives a restart) skip the scan step.
 *
 * Diagnostics: debug log line "ID: ready in incoming/".
 */
#include "qmgr.h"

#include "util/log.h"

static void qmgr_incoming_add(struct qmgr *q, const char *id, bool noscan)
{
    struct qmgr_msg *m = qmgr_msg_add(q, id, QMGR_INCOMING);

    q->incoming_ready++;
    m->dir = QMGR_INCOMING;
    m->noscan = noscan;
    log_debug("%s: ready in incoming/", id);
    qmgr_msg_wait(q, m);
}

void qmgr_incoming_ready(struct qmgr *q, const char *id)
{
    qmgr_incoming_add(q, id, false);
}

void qmgr_incoming_ready_noscan(struct qmgr *q, const char *id)
{
    qmgr_incoming_add(q, id, true);
}

void qmgr_incoming_ready_released(struct qmgr *q, const char *id)
{
    struct qmgr_msg *m = qmgr_msg_add(q, id, QMGR_INCOMING);

    m->released = true;
    qmgr_incoming_add(q, id, false);
}
