/*
 * dsn_int - helpers shared by the lib/dsn files (not a public interface;
 * the unit test uses them directly).
 */
#ifndef MAILGW_DSN_INT_H
#define MAILGW_DSN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "dsn/dsn.h"
#include "util/buf.h"

#define DSN_LINE_MAX 998        /* RFC 5322 §2.1.1, without CRLF */
#define DSN_FOLD_AT 78          /* preferred header line length */

/* dsn_text.c */
bool dsn_utf8_valid(const char *s, size_t n);
bool dsn_has_8bit(const char *s, size_t n);
/* Printable ASCII only: CR/LF/TAB/controls become one space (runs are
 * collapsed, ends trimmed), 8-bit octets '?'; at most max bytes read. */
void dsn_clean_text(struct buf *out, const char *s, size_t max);
/* An address for a header or the text part: controls and blanks '?',
 * 8-bit kept only when utf8_ok and s is valid UTF-8 (else '?').
 * Returns true when 8-bit octets were written. */
bool dsn_clean_addr(struct buf *out, const char *s, bool utf8_ok);
/* Host name characters only (others '-'), at most 255. */
void dsn_clean_host(struct buf *out, const char *host);
/* Queue ID characters only ([0-9A-Za-z], others dropped), at most 64. */
void dsn_clean_id(struct buf *out, const char *id);
void dsn_xtext_encode(struct buf *out, const char *s, size_t n);
void dsn_xtext_decode(struct buf *out, const char *s, size_t n);
/* "TYPE;" + address for Original-/Final-Recipient: the address raw when
 * it is printable ASCII (or valid UTF-8 with utf8_ok: *raw8 set), else
 * xtext-encoded.  xtext_in: s is xtext (ORCPT) and is decoded first. */
void dsn_address_field(struct buf *out, const char *type, const char *s, size_t n,
                       bool xtext_in, bool utf8_ok, bool *raw8);
/* "Name: value" CRLF, folded at spaces near DSN_FOLD_AT, never a line
 * over DSN_LINE_MAX (a long word is cut and continued after CRLF SP).
 * value must already be free of CR/LF/controls. */
void dsn_field(struct buf *out, const char *name, const char *value, size_t n);
/* RFC 5322 date-time in local time, C locale names. */
void dsn_date(char *out, size_t size, time_t t);
/* Convert any line ends (CRLF, bare CR, bare LF) to CRLF and wrap lines
 * longer than DSN_LINE_MAX; the output always ends with CRLF. */
void dsn_text_lines(struct buf *out, const char *s, size_t n);

/* dsn_template.c */
struct dsn_macro {
    const char *name;           /* "HOSTNAME" (without %) */
    const char *value;          /* inserted literally, never re-scanned */
};
/* Expand %NAME% macros of tmpl; "%%" is "%"; unknown names and lone '%'
 * are copied as they are; lines starting with '#' are comments. */
void dsn_template_expand(struct buf *out, const char *tmpl, size_t len,
                         const struct dsn_macro *macros, size_t nmacros);
/* Part 1 body (CRLF, wrapped). */
void dsn_text_part(struct buf *out, const struct dsn_request *req, enum dsn_type type,
                   bool utf8_ok);

/* dsn_status.c */
/* Part 2 body: the message/delivery-status fields.  *raw8 set when raw
 * UTF-8 addresses were written. */
void dsn_status_part(struct buf *out, const struct dsn_request *req, time_t now, bool *raw8);
const char *dsn_status_code(const struct dsn_rcpt_report *r);
/* "NAME[IP]:PORT" -> "NAME" ("[IP]" when NAME is unknown); "" for none. */
void dsn_remote_name(struct buf *out, const char *remote);

/* dsn_original.c */
/* Part 3 body: the original (headers only when hdrs_only), CRLF line
 * ends, lines wrapped, cut at limit bytes with whole header lines kept.
 * -1 with *why on a read error. */
int dsn_original_part(struct buf *out, int fd, const struct queue_file *qf, bool hdrs_only,
                      size_t limit, bool *truncated, const char **why);

/* dsn.c */
/* Pick a boundary that occurs in none of the parts: candidates first,
 * then random ones.  0 / -1. */
int dsn_boundary_choose(char *out, size_t size, const struct buf *parts, size_t nparts,
                        const char *const *candidates);

#endif
