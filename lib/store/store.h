/*
 * store - the on-disk format of the quarantine / backup / archive store
 * (issue 6), owned by the quarantine daemon.
 *
 * One file per stored message, named by a store ID (the queue ID format
 * of lib/queue/queue_id.h: time of storing plus inode, so IDs sort by
 * storing time and queue_id_arrival() gives that time).  Each area is its
 * own directory (QuarantinePath, BackupPath, IncomingArchivePath,
 * OutgoingArchivePath); a new entry is written to AREA/tmp/ID, fsync()ed,
 * renamed to AREA/ID and AREA/ is fsync()ed: an entry is either complete
 * (END record) or absent.
 *
 * The file is a sequence of typed, length-prefixed records (u8 type, u32
 * big-endian length, value), in this order (the reader enforces it):
 *   VERSION            u32 STORE_VERSION, first
 *   header records     in increasing type order, each at most once:
 *                      AREA (u8 enum store_area), QUEUE_ID, STORED (u64
 *                      us), STATUS, NAMES, GROUP, REASON (verdict), then
 *                      the original envelope: ARRIVAL (u64 us),
 *                      CLIENT_ADDR, CLIENT_NAME, HELO, PROTO, SENDER,
 *                      ENVID, RET (u8), BODY_TYPE (u8), SMTPUTF8 (u8).
 *                      AREA, STORED, ARRIVAL and SENDER are mandatory.
 *   RCPT               1..QUEUE_MAX_RCPTS: u8 notify bits, u32 addr len,
 *                      addr, u32 orcpt len, orcpt (0 = none)
 *   CONTENT            0 or more, 1..QUEUE_CONTENT_CHUNK bytes each: the
 *                      message exactly as it was in the queue file
 *   END                length 0, last byte of the file
 * Strings: no NUL/CR/LF, at most QUEUE_MAX_STRING bytes (SENDER may be
 * empty: the null sender).
 *
 * Security: entries are read back by the daemon and the CLI's requests
 * name them by ID, so store_id_valid() is checked before any path is
 * built; the reader never trusts a length (checked against the file size
 * and the limits before any allocation) and never loads the content.
 */
#ifndef MAILGW_STORE_H
#define MAILGW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "util/buf.h"

#define STORE_VERSION 1
#define STORE_ID_SIZE QUEUE_ID_SIZE

enum store_area {
    STORE_QUARANTINE = 0,
    STORE_BACKUP = 1,
    STORE_ARCHIVE_IN = 2,
    STORE_ARCHIVE_OUT = 3,
    STORE_NAREAS = 4,
};

enum store_rec_type {
    SREC_VERSION = 1,
    SREC_AREA = 2,
    SREC_QUEUE_ID = 3,
    SREC_STORED = 4,
    SREC_STATUS = 5,
    SREC_NAMES = 6,
    SREC_GROUP = 7,
    SREC_REASON = 8,
    SREC_ARRIVAL = 16,
    SREC_CLIENT_ADDR = 17,
    SREC_CLIENT_NAME = 18,
    SREC_HELO = 19,
    SREC_PROTO = 20,
    SREC_SENDER = 21,
    SREC_ENVID = 22,
    SREC_RET = 23,
    SREC_BODY_TYPE = 24,
    SREC_SMTPUTF8 = 25,
    SREC_RCPT = 32,
    SREC_CONTENT = 48,
    SREC_END = 127,
};

/* The verdict part of an entry.  Strings may be NULL (record absent). */
struct store_verdict {
    enum store_area area;
    const char *queue_id;       /* the queue ID the message had */
    uint64_t stored_us;         /* 0 = now (writer) */
    const char *status;         /* "infected", "clean", ... */
    const char *names;          /* virus names, comma separated */
    const char *group;          /* policy group */
    const char *reason;
};

/* A parsed entry: every string owned by the entry (store_entry_free). */
struct store_entry {
    char id[STORE_ID_SIZE];     /* set by store_entry_open */
    struct store_verdict verdict;
    struct queue_envelope env;  /* rcpts[].status = QUEUE_RCPT_PENDING */
    off_t content_offset;       /* first CONTENT (or END) record */
    off_t content_end;          /* just after the last CONTENT record */
    uint64_t content_size;
    off_t file_size;
};

/* Area names as the protocol and the CLI spell them: "quarantine",
 * "backup", "archive-in", "archive-out". */
const char *store_area_name(enum store_area area);
/* -1 for an unknown name. */
int store_area_parse(const char *name);
/* klmaila's three-letter status code (reference §2.1): RCV / SNT for the
 * archives, else CLN CRD SSP PRT ERR FLT INF from the status word
 * (corrupted and unknown words give ERR). */
const char *store_status_code(enum store_area area, const char *status);

bool store_id_valid(const char *id);

/* ---- writer ---- */

struct store_writer {
    int dirfd;                  /* the area directory */
    int tmpfd;                  /* AREA/tmp */
    int fd;                     /* the new file, -1 when none */
    char id[STORE_ID_SIZE];
    struct buf out;
    size_t chunk_hdr;           /* open CONTENT record header, SIZE_MAX none */
    uint64_t content_size;
    const char *error;          /* static reason after a failure */
};

/* Create (mkdir -p, mode 0700) the area directory and its tmp/.
 * 0, or -1 with errno. */
int store_dir_prepare(const char *dir);

/* Start a new entry in dir (prepared or not): creates dir/tmp/ID.  The
 * writer functions return 0 or -1 with w->error set; after a failure
 * only store_writer_abort() is useful. */
int store_writer_open(struct store_writer *w, const char *dir);
int store_writer_header(struct store_writer *w, const struct store_verdict *v,
                        const struct queue_envelope *env);
int store_writer_content(struct store_writer *w, const void *p, size_t n);
/* END, fsync, rename tmp/ID -> ID, fsync dir.  The entry's ID is w->id.
 * Closes everything on success and on failure (the temp file removed). */
int store_writer_commit(struct store_writer *w);
/* Remove the temp file and close everything (harmless after commit). */
void store_writer_abort(struct store_writer *w);

/* Copy a queue file (already read with queue_file_read from qfd) with
 * its envelope and content into a new entry in dir.  0 and id set, or -1
 * with *why. */
int store_put_queue_file(const char *dir, const struct store_verdict *v, int qfd,
                         const struct queue_file *qf, char id[STORE_ID_SIZE],
                         const char **why);

/* ---- reader ---- */

/* Parse and validate the entry in fd.  0, or -1 with *why (static). */
int store_entry_read(int fd, struct store_entry *e, const char **why);
/* Open dir/ID (O_RDONLY) and read it.  Returns the fd (caller closes),
 * or -1 with *why ("no such entry" when it does not exist; errno kept). */
int store_entry_open(const char *dir, const char *id, struct store_entry *e,
                     const char **why);
void store_entry_free(struct store_entry *e);

struct store_content {
    int fd;
    off_t pos, end;
    uint32_t left;
};
void store_content_open(struct store_content *c, int fd, const struct store_entry *e);
/* Up to n content bytes; 0 at the end; -1 with *why. */
ssize_t store_content_read(struct store_content *c, void *p, size_t n, const char **why);

/* ---- directories ---- */

/* The valid entry IDs in dir, sorted (oldest first).  Returns the count
 * and *ids (free with store_ids_free), or -1 with errno when dir cannot
 * be read (ENOENT: an area never written to counts as empty: 0). */
long store_list_ids(const char *dir, char ***ids);
void store_ids_free(char **ids, long n);
/* Unlink dir/ID and fsync dir.  0, or -1 with errno (ENOENT: no entry). */
int store_remove(const char *dir, const char *id);

#endif
