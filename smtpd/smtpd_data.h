/*
 * smtpd_data - the message content state machines of smtpd, pure (no I/O,
 * no logging, no allocation beyond the output buffer) so they are unit
 * tested and fuzzed on their own.
 *
 * smtpd_data_*: framing of the message text.
 *   SMTPD_DATA_DOT (after DATA): end of data is exactly CRLF "." CRLF (the
 *   CRLF that ends the previous line, or the start of the data); lines
 *   that start with "." lose that dot (RFC 5321 4.5.2).
 *   SMTPD_DATA_RAW (BDAT chunks): no end marker, no dot handling.
 *   In both modes a line ends only with CRLF.  A bare CR, a bare LF or a
 *   NUL is never a line end nor part of an end marker: it is passed to the
 *   output as a plain byte and flagged, and smtpd refuses the whole message
 *   when the flags are set (no SMTP smuggling: "\n.\n", "\r.\r\n", ... can
 *   neither end the data nor start a second message).  A line longer than
 *   line_max bytes (CRLF included) sets SMTPD_DATA_LONG_LINE.
 *
 * smtpd_hdr_*: watches the (unstuffed) content as it streams and notes,
 *   in the header section only, the number of Received: headers (hop
 *   count) and the Message-ID value (printable ASCII, for the log).
 */
#ifndef MAILGW_SMTPD_DATA_H
#define MAILGW_SMTPD_DATA_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

enum smtpd_data_mode { SMTPD_DATA_DOT, SMTPD_DATA_RAW };

enum smtpd_data_flag {
    SMTPD_DATA_BARE_CR = 1 << 0,
    SMTPD_DATA_BARE_LF = 1 << 1,
    SMTPD_DATA_NUL = 1 << 2,
    SMTPD_DATA_LONG_LINE = 1 << 3,
};

struct smtpd_data {
    int mode;               /* enum smtpd_data_mode */
    int state;              /* internal */
    unsigned flags;         /* enum smtpd_data_flag bits seen so far */
    size_t line_len;        /* bytes of the current line so far */
    size_t line_max;        /* limit, CRLF included; 0 = none */
};

void smtpd_data_init(struct smtpd_data *d, int mode, size_t line_max);
/* Consume input, append content to out.  Returns 1 when the end of data
 * was seen (DOT mode; *used counts up to and including the final CRLF,
 * the rest of the input belongs to the next command), 0 when all input was
 * consumed and more is needed. */
int smtpd_data_feed(struct smtpd_data *d, const char *in, size_t n,
                    size_t *used, struct buf *out);
/* RAW mode, after the last chunk: flush a pending CR (a bare CR) and end
 * an unterminated last line with CRLF. */
void smtpd_data_finish(struct smtpd_data *d, struct buf *out);
/* Reply text (after the codes) naming the first framing problem, or NULL. */
const char *smtpd_data_error(unsigned flags);

#define SMTPD_HDR_LINE_MAX 1000
#define SMTPD_MSGID_MAX 250

struct smtpd_hdr {
    bool done;              /* header section over */
    bool in_msgid;          /* current logical header is Message-ID */
    bool overflow;          /* current physical line longer than we keep */
    bool last_cr;
    unsigned received;      /* Received: headers seen */
    char msgid[SMTPD_MSGID_MAX + 1];
    size_t linelen;
    char line[SMTPD_HDR_LINE_MAX + 1];
};

void smtpd_hdr_init(struct smtpd_hdr *h);
void smtpd_hdr_feed(struct smtpd_hdr *h, const char *p, size_t n);

#endif
