/*
 * qmgr_incoming - the hand-off point after a message is durably queued.
 *
 * Interface: qmgr_incoming_ready(q, id).
 *
 * Called once per message that is in incoming/ and fsync()ed: right after
 * a commit was acknowledged, and at start for every valid incoming/ file.
 * This is where the next stage (content scanning, then delivery) starts;
 * for now it counts the message and logs at debug level.
 *
 * Diagnostics: debug log line "ID: ready in incoming/".
 */
#include "qmgr.h"

#include "util/log.h"

void qmgr_incoming_ready(struct qmgr *q, const char *id)
{
    q->incoming_ready++;
    log_debug("%s: ready in incoming/", id);
}
