/*
 * queue_id - queue IDs: unique without locks, sorted by arrival, safe in
 * file names and log lines (DESIGN §4).
 *
 * Format (only [0-9A-Za-z], QUEUE_ID_MIN..QUEUE_ID_MAX characters):
 *   6 base-62 digits of seconds since the epoch,
 *   4 base-62 digits of microseconds,
 *   2..10 base-62 digits of the queue file's inode number.
 * The base-62 alphabet "0-9A-Z a-z" is in ASCII order, so byte order of
 * IDs is arrival order.  Two files that exist at the same time never
 * share an inode, so time plus inode is unique (as Postfix's long IDs);
 * queue_id_create() still refuses to replace an existing name and retries.
 *
 * Never trust an ID that arrives from a peer: check it with
 * queue_id_valid() before building a path from it.
 */
#ifndef MAILGW_QUEUE_ID_H
#define MAILGW_QUEUE_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUEUE_ID_MIN 12
#define QUEUE_ID_MAX 20
#define QUEUE_ID_SIZE (QUEUE_ID_MAX + 1)

/* Format an ID from a time and an inode number into out. */
void queue_id_make(char out[QUEUE_ID_SIZE], uint64_t time_us, uint64_t inode);
/* true when s is a well-formed ID (length and alphabet). */
bool queue_id_valid(const char *s);
/* Arrival time encoded in a valid ID; -1 when s is not valid. */
int queue_id_arrival(const char *s, uint64_t *time_us);

/* Create a new empty file (O_RDWR, mode 0600, O_CLOEXEC) named by a fresh
 * ID in the directory dirfd.  Returns the fd and fills id, or -1 (errno). */
int queue_id_create(int dirfd, char id[QUEUE_ID_SIZE]);
/* Move the kept file sparefd/name to dirfd/ID under a fresh ID made from
 * its inode, reset its mode to 0600 and open it O_RDWR (its old bytes are
 * still there).  Fails
 * (-1, errno; the spare is removed) when it is not a plain file of ours
 * with one link, or when another open file description can write to it. */
int queue_id_recycle(int sparefd, const char *name, int dirfd, char id[QUEUE_ID_SIZE]);

#endif
