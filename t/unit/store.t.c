/*
 * store.t - the quarantine store format (lib/store): round trip of
 * envelope, verdict and content (also large, multi-record content and a
 * copy from a queue file), durable layout (AREA/ID, nothing left in tmp/),
 * listing and removal, and corruption rejected: every truncation, data
 * after END, unknown records, records out of order, bad lengths.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "tap.h"
#include "util/buf.h"
#include "util/mem.h"

static char dir[256];

static void make_content(struct buf *b, size_t size)
{
    buf_reset(b);
    buf_append_str(b, "Subject: store test\r\n\r\n");
    for (size_t i = 0; b->len < size; i++)
        buf_append_byte(b, (i % 60 == 58) ? '\r' : (i % 60 == 59) ? '\n' : (uint8_t)('a' + i % 26));
}

static int write_entry(const char *d, const struct buf *content, char id[STORE_ID_SIZE])
{
    struct queue_rcpt r[2] = { { .addr = "u1@example.test", .orcpt = "rfc822;U1@example.test",
                                 .notify = QUEUE_NOTIFY_FAILURE },
                               { .addr = "u2@example.test" } };
    struct queue_envelope env = { .arrival_us = 1700000000123456ULL, .client_addr = "192.0.2.1",
                                  .client_name = "c.example", .helo = "helo.example",
                                  .proto = "ESMTP", .sender = "s@example.org", .envid = "ENV1",
                                  .ret = QUEUE_RET_HDRS, .body_type = QUEUE_BODY_8BITMIME,
                                  .smtputf8 = true, .rcpts = r, .nrcpts = 2 };
    struct store_verdict v = { STORE_QUARANTINE, "1xX3hl1RGDjxRO", 0, "infected",
                               "EICAR-Test-File", "policy", "blocked by policy" };
    struct store_writer w;

    if (store_writer_open(&w, d) < 0 || store_writer_header(&w, &v, &env) < 0
        || store_writer_content(&w, content->data, content->len / 3) < 0
        || store_writer_content(&w, content->data + content->len / 3,
                                content->len - content->len / 3) < 0) {
        store_writer_abort(&w);
        return -1;
    }
    if (store_writer_commit(&w) < 0)
        return -1;
    memcpy(id, w.id, STORE_ID_SIZE);
    return 0;
}

static void read_all(int fd, const struct store_entry *e, struct buf *got)
{
    struct store_content sc;
    char chunk[1000];
    const char *why = NULL;
    ssize_t n;

    buf_reset(got);
    store_content_open(&sc, fd, e);
    while ((n = store_content_read(&sc, chunk, sizeof(chunk), &why)) > 0)
        buf_append(got, chunk, (size_t)n);
}

static void test_round_trip(void)
{
    struct buf content = BUF_INIT, got = BUF_INIT;
    struct store_entry e;
    char id[STORE_ID_SIZE];
    const char *why = NULL;
    int fd;

    make_content(&content, 200000);
    ok(write_entry(dir, &content, id) == 0, "an entry is written");
    ok(store_id_valid(id), "its ID is valid: %s", id);
    fd = store_entry_open(dir, id, &e, &why);
    ok(fd >= 0, "and read back%s%s", fd < 0 ? ": " : "", fd < 0 ? why : "");
    if (fd < 0)
        return;
    is_str(e.id, id, "entry ID");
    is_int(e.verdict.area, STORE_QUARANTINE, "area");
    is_str(e.verdict.queue_id, "1xX3hl1RGDjxRO", "queue ID");
    is_str(e.verdict.status, "infected", "status");
    is_str(e.verdict.names, "EICAR-Test-File", "virus names");
    is_str(e.verdict.group, "policy", "group");
    is_str(e.verdict.reason, "blocked by policy", "reason");
    ok(e.verdict.stored_us > 1700000000000000ULL, "stored time set by the writer");
    ok(e.env.arrival_us == 1700000000123456ULL, "arrival");
    is_str(e.env.client_addr, "192.0.2.1", "client address");
    is_str(e.env.client_name, "c.example", "client name");
    is_str(e.env.helo, "helo.example", "helo");
    is_str(e.env.proto, "ESMTP", "proto");
    is_str(e.env.sender, "s@example.org", "sender");
    is_str(e.env.envid, "ENV1", "envid");
    ok(e.env.ret == QUEUE_RET_HDRS && e.env.body_type == QUEUE_BODY_8BITMIME && e.env.smtputf8,
       "ret, body type, smtputf8");
    is_int(e.env.nrcpts, 2, "two recipients");
    is_str(e.env.rcpts[0].addr, "u1@example.test", "recipient 1");
    is_str(e.env.rcpts[0].orcpt, "rfc822;U1@example.test", "recipient 1 orcpt");
    is_int(e.env.rcpts[0].notify, QUEUE_NOTIFY_FAILURE, "recipient 1 notify");
    ok(e.env.rcpts[1].orcpt == NULL, "recipient 2 without orcpt");
    is_int(e.content_size, content.len, "content size");
    read_all(fd, &e, &got);
    ok(got.len == content.len && memcmp(got.data, content.data, got.len) == 0,
       "content identical (several 64 KiB records)");
    store_entry_free(&e);
    close(fd);
    buf_free(&content);
    buf_free(&got);
}

static void test_from_queue_file(void)
{
    char qpath[300], id[STORE_ID_SIZE];
    struct queue_rcpt r = { .addr = "rcpt@example.test" };
    struct queue_envelope env = { .arrival_us = 1, .sender = "", .rcpts = &r, .nrcpts = 1 };
    struct store_verdict v = { STORE_ARCHIVE_IN, "1xX3hl1RGDjxRO", 0, "clean", NULL, NULL, NULL };
    struct queue_writer w;
    struct queue_file qf;
    struct store_entry e;
    struct buf content = BUF_INIT, got = BUF_INIT;
    const char *why = NULL;
    int qfd, fd;

    snprintf(qpath, sizeof(qpath), "%s/queuefile", dir);
    qfd = open(qpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    make_content(&content, 70000);
    queue_writer_open(&w, qfd);
    queue_writer_envelope(&w, &env);
    queue_writer_content(&w, content.data, content.len);
    ok(queue_writer_finish(&w) == 0 && queue_file_read(qfd, &qf, &why) == 0, "a queue file");
    queue_writer_close(&w);
    char *area = xasprintf("%s/archive-in", dir);
    ok(store_put_queue_file(area, &v, qfd, &qf, id, &why) == 0, "copied into a new area");
    fd = store_entry_open(area, id, &e, &why);
    ok(fd >= 0 && strcmp(e.env.sender, "") == 0 && e.env.nrcpts == 1
           && e.verdict.area == STORE_ARCHIVE_IN && e.verdict.names == NULL,
       "null sender, recipient, area kept");
    if (fd >= 0) {
        read_all(fd, &e, &got);
        ok(got.len == content.len && memcmp(got.data, content.data, got.len) == 0,
           "content copied exactly");
        store_entry_free(&e);
        close(fd);
    }
    char **ids;
    char *tmp = xasprintf("%s/tmp", area);
    is_int(store_list_ids(tmp, &ids), 0, "nothing left in tmp/");
    store_ids_free(ids, 0);
    queue_file_free(&qf);
    close(qfd);
    unlink(qpath);
    free(tmp);
    free(area);
    buf_free(&content);
    buf_free(&got);
}

static struct buf file_bytes(const char *path)
{
    struct buf b = BUF_INIT;
    char chunk[65536];
    ssize_t n;
    int fd = open(path, O_RDONLY);

    while (fd >= 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
        buf_append(&b, chunk, (size_t)n);
    if (fd >= 0)
        close(fd);
    return b;
}

/* Parse bytes written to a scratch file: 0 accepted, -1 rejected. */
static int parse_bytes(const void *p, size_t n, const char **why)
{
    char path[300];
    struct store_entry e;
    int fd, rc;

    snprintf(path, sizeof(path), "%s/scratch", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n)
        return -2;
    memset(&e, 0, sizeof(e));
    rc = store_entry_read(fd, &e, why);
    store_entry_free(&e);
    close(fd);
    unlink(path);
    return rc;
}

static void test_corruption(void)
{
    struct buf content = BUF_INIT, good;
    char id[STORE_ID_SIZE], *path;
    const char *why = NULL;
    int bad = 0;

    make_content(&content, 300);
    write_entry(dir, &content, id);
    path = xasprintf("%s/%s", dir, id);
    good = file_bytes(path);
    ok(parse_bytes(good.data, good.len, &why) == 0, "the good bytes parse");
    for (size_t n = 0; n < good.len; n++)
        if (parse_bytes(good.data, n, &why) == 0)
            bad++;
    is_int(bad, 0, "every truncation is rejected");
    buf_append(&good, "x", 1);
    ok(parse_bytes(good.data, good.len, &why) < 0 && strcmp(why, "data after END") == 0,
       "data after END: %s", why);
    good.len--;

    /* record 2 is AREA (u8 type at offset 9): make it unknown (type 9). */
    good.data[9] = 9;
    ok(parse_bytes(good.data, good.len, &why) < 0, "an unknown record type: %s", why);
    good.data[9] = 70;
    ok(parse_bytes(good.data, good.len, &why) < 0, "a reserved record type: %s", why);
    good.data[9] = SREC_SENDER;
    ok(parse_bytes(good.data, good.len, &why) < 0, "a record out of order: %s", why);
    good.data[9] = SREC_AREA;
    good.data[14] = 7;
    ok(parse_bytes(good.data, good.len, &why) < 0, "an area out of range: %s", why);
    good.data[14] = STORE_QUARANTINE;
    good.data[10] = 0x7f;
    ok(parse_bytes(good.data, good.len, &why) < 0, "a length past the end: %s", why);
    good.data[10] = 0;
    good.data[8] = 2;
    ok(parse_bytes(good.data, good.len, &why) < 0, "an unsupported version: %s", why);
    good.data[8] = STORE_VERSION;
    ok(parse_bytes(good.data, good.len, &why) == 0, "restored bytes parse again");
    ok(parse_bytes("garbage that is not a store entry", 33, &why) < 0, "garbage: %s", why);

    /* a queue file is no store entry either */
    struct queue_rcpt r = { .addr = "r@x" };
    struct queue_envelope env = { .arrival_us = 1, .sender = "s@x", .rcpts = &r, .nrcpts = 1 };
    struct queue_writer w;
    char *qp = xasprintf("%s/qf", dir);
    int qfd = open(qp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    queue_writer_open(&w, qfd);
    queue_writer_envelope(&w, &env);
    queue_writer_finish(&w);
    queue_writer_close(&w);
    struct buf qb = file_bytes(qp);
    ok(parse_bytes(qb.data, qb.len, &why) < 0, "a queue file is rejected: %s", why);
    close(qfd);
    unlink(qp);
    free(qp);
    buf_free(&qb);
    free(path);
    buf_free(&good);
    buf_free(&content);
}

static void test_writer_refuses(void)
{
    struct queue_rcpt r = { .addr = "a@b" };
    struct queue_envelope env = { .arrival_us = 1, .sender = "s\r\nX: y", .rcpts = &r,
                                  .nrcpts = 1 };
    struct store_verdict v = { STORE_BACKUP, NULL, 0, NULL, NULL, NULL, NULL };
    struct store_writer w;
    char **ids;
    char *tmp = xasprintf("%s/tmp", dir);

    ok(store_writer_open(&w, dir) == 0, "writer opens");
    ok(store_writer_header(&w, &v, &env) < 0, "a sender with CR/LF is refused");
    ok(store_writer_commit(&w) < 0, "and the entry cannot be committed");
    is_int(store_list_ids(tmp, &ids), 0, "its temp file is gone");
    store_ids_free(ids, 0);
    ok(store_writer_open(&w, "relative/dir") < 0, "a relative area path is refused");
    store_writer_abort(&w);
    free(tmp);
}

static void test_dir_ops(void)
{
    struct buf content = BUF_INIT;
    char a[STORE_ID_SIZE], b[STORE_ID_SIZE], **ids;
    char *d = xasprintf("%s/list", dir);
    long n;

    make_content(&content, 100);
    is_int(store_list_ids(d, &ids), 0, "a missing area lists as empty");
    write_entry(d, &content, a);
    write_entry(d, &content, b);
    char *junk = xasprintf("%s/README", d);
    close(open(junk, O_CREAT | O_WRONLY, 0600));
    n = store_list_ids(d, &ids);
    ok(n == 2 && strcmp(ids[0], a) == 0 && strcmp(ids[1], b) == 0,
       "list: only valid IDs, in storing order");
    store_ids_free(ids, n);
    ok(store_remove(d, "../list/README") < 0, "remove refuses an invalid ID");
    ok(store_remove(d, a) == 0, "remove an entry");
    ok(store_remove(d, a) < 0, "removing it twice fails");
    n = store_list_ids(d, &ids);
    ok(n == 1 && strcmp(ids[0], b) == 0, "one left");
    store_ids_free(ids, n);
    struct store_entry e;
    const char *why = NULL;
    ok(store_entry_open(d, "../../etc/passwd", &e, &why) < 0 && strcmp(why, "invalid ID") == 0,
       "open refuses an invalid ID");
    ok(store_entry_open(d, a, &e, &why) < 0 && strcmp(why, "no such entry") == 0,
       "open of a removed entry: no such entry");
    is_str(store_area_name(STORE_ARCHIVE_OUT), "archive-out", "area names");
    is_int(store_area_parse("backup"), STORE_BACKUP, "area parse");
    is_int(store_area_parse("attic"), -1, "unknown area");
    is_str(store_status_code(STORE_QUARANTINE, "infected"), "INF", "INF");
    is_str(store_status_code(STORE_BACKUP, "suspicious"), "SSP", "SSP");
    is_str(store_status_code(STORE_QUARANTINE, "protected"), "PRT", "PRT");
    is_str(store_status_code(STORE_QUARANTINE, "corrupted"), "ERR", "corrupted is ERR");
    is_str(store_status_code(STORE_QUARANTINE, "filtered"), "FLT", "FLT");
    is_str(store_status_code(STORE_QUARANTINE, "disinfected"), "CRD", "CRD");
    is_str(store_status_code(STORE_QUARANTINE, "clean"), "CLN", "CLN");
    is_str(store_status_code(STORE_ARCHIVE_IN, "infected"), "RCV", "incoming archive is RCV");
    is_str(store_status_code(STORE_ARCHIVE_OUT, NULL), "SNT", "outgoing archive is SNT");
    unlink(junk);
    free(junk);
    free(d);
    buf_free(&content);
}

int main(void)
{
    const char *t = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/store-t-XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(dir) == NULL) {
        tap_plan_skip_all("mkdtemp failed");
        return 0;
    }
    test_round_trip();
    test_from_queue_file();
    test_corruption();
    test_writer_refuses();
    test_dir_ops();
    char *cmd = xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", dir);
    free(cmd);
    return tap_done();
}
