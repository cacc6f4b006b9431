/*
 * addr - e-mail addresses and masks.
 *
 * 1. RFC 5321 paths (MAIL FROM / RCPT TO) with their ESMTP parameters:
 *    addr_path_parse() takes what follows "MAIL FROM:" / "RCPT TO:" and
 *    fills a struct addr_path: the address as written without "<>" and
 *    without a source route ("" = null sender), and the decoded
 *    parameters.  On error it returns -1 with *why = enhanced status code
 *    and text for the reply ("5.1.7 Bad sender address syntax") and
 *    p->code = the basic reply code to use (501, 553 or 555); the caller
 *    writes "<code> <why>".
 *
 * 2. Masks ('*' any run, '?' one character; ASCII case-insensitive):
 *    address masks ("*@example.com", "user@*", "*"; a mask without '@' is
 *    a domain mask and matches the address's domain), domain masks
 *    ("*.example.com", "example.com"), IP masks ("192.0.2.1",
 *    "192.0.2.0/24", "192.0.2.0/255.255.255.0", "2001:db8::/32", "any").
 *    struct addr_masklist holds a list of them (for config lists and
 *    rules) and matches an IP or an address.  The *_check functions give
 *    the config code a reason for a bad mask.
 *
 * Security: no control character, NUL, CR or LF is ever accepted in a
 * path or parameter; non-ASCII only as well-formed UTF-8 and only when the
 * transaction is SMTPUTF8; all lengths are limited as RFC 5321 4.5.3.1.
 */
#ifndef MAILGW_ADDR_H
#define MAILGW_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define ADDR_LOCAL_MAX 64    /* octets in a local part */
#define ADDR_DOMAIN_MAX 255  /* octets in a domain */
#define ADDR_PATH_MAX 256    /* octets in "<...>" including the brackets */
#define ADDR_ENVID_MAX 100   /* decoded ENVID (RFC 3461 4.4) */
#define ADDR_ORCPT_MAX 500   /* ORCPT value as sent (RFC 3461 4.2) */

enum addr_path_kind { ADDR_MAIL, ADDR_RCPT };

/* Flags for addr_path_parse. */
enum {
    /* The transaction is SMTPUTF8 (MAIL had the SMTPUTF8 parameter): RCPT
     * may hold UTF-8.  For MAIL, the SMTPUTF8 parameter on the same line
     * has the same effect when ADDR_SMTPUTF8_OK is also given. */
    ADDR_UTF8 = 1 << 0,
    /* The server offers SMTPUTF8 (MAIL may carry the parameter). */
    ADDR_SMTPUTF8_OK = 1 << 1,
    /* Accept a path without "<>" (MAIL FROM:user@example.com). */
    ADDR_BARE_OK = 1 << 2,
};

/* Values equal to lib/queue's QUEUE_NOTIFY_* / QUEUE_BODY_* / QUEUE_RET_*. */
enum {
    ADDR_NOTIFY_NEVER = 1 << 0,
    ADDR_NOTIFY_SUCCESS = 1 << 1,
    ADDR_NOTIFY_FAILURE = 1 << 2,
    ADDR_NOTIFY_DELAY = 1 << 3,
};
enum addr_body { ADDR_BODY_NONE = 0, ADDR_BODY_7BIT, ADDR_BODY_8BITMIME, ADDR_BODY_BINARYMIME };
enum addr_ret { ADDR_RET_NONE = 0, ADDR_RET_FULL, ADDR_RET_HDRS };

struct addr_path {
    char addr[ADDR_PATH_MAX + 1]; /* without <> and route; "" = null path */
    size_t len;
    size_t at;              /* index of the '@' before the domain; len when none */
    bool utf8;              /* non-ASCII in the address */
    bool has_domain;        /* false for "<>" and RCPT TO:<Postmaster> */
    /* MAIL parameters */
    bool has_size;
    uint64_t size;          /* SIZE= */
    enum addr_body body;    /* BODY= */
    enum addr_ret ret;      /* RET= */
    bool has_envid;
    char envid[ADDR_ENVID_MAX + 1]; /* ENVID=, xtext-decoded */
    bool smtputf8;          /* SMTPUTF8 */
    /* RCPT parameters */
    unsigned notify;        /* NOTIFY= bits; 0 = not given */
    bool has_orcpt;
    char orcpt_type[32];    /* "rfc822", "utf-8", ... */
    char orcpt[ADDR_ORCPT_MAX + 1]; /* the address, xtext-decoded */
    /* On error: the basic reply code (501, 553, 555). */
    int code;
};

/* arg/len: what follows "MAIL FROM:" / "RCPT TO:" (leading blanks are
 * skipped).  0, or -1 with *why (static) and p->code. */
int addr_path_parse(const char *arg, size_t len, enum addr_path_kind kind,
                    unsigned flags, struct addr_path *p, const char **why);
/* The domain of p ("" when none). */
const char *addr_path_domain(const struct addr_path *p);

/* Decode RFC 3461 xtext of n bytes into out (size outsize, NUL-terminated).
 * utf8 also allows raw well-formed UTF-8 (RFC 6533).  Decoded NUL and
 * control characters are refused.  0, or -1 (bad syntax, too long). */
int addr_xtext_decode(const char *s, size_t n, bool utf8, char *out, size_t outsize);
/* Append the RFC 3461 xtext of n bytes: every byte outside 33..126, and
 * '+' and '=', as "+XX". */
void addr_xtext_encode(struct buf *out, const char *s, size_t n);
/* Length of the well-formed UTF-8 sequence at s (2..4 for non-ASCII, 1 for
 * ASCII), 0 when malformed (overlong, surrogate, > U+10FFFF, cut). */
size_t addr_utf8_len(const unsigned char *s, size_t n);

/* '*' matches any run (also empty), '?' one character (UTF-8 aware); ASCII
 * letters match case-insensitively.  Never exponential. */
bool addr_wildmatch(const char *mask, const char *s);
/* Domain mask against a domain: "*.example.com", "example.com", "*". */
bool addr_domain_match(const char *mask, const char *domain);
/* Address mask against an address (without <>): a mask with '@' matches
 * the whole address, "*" anything, one without '@' the domain. */
bool addr_mask_match(const char *mask, const char *addr);

/* An IP address: family AF_INET (4 bytes used) or AF_INET6. */
struct addr_ip {
    int family;
    uint8_t b[16];
};
/* Text to address; an IPv4-mapped IPv6 address becomes AF_INET. */
int addr_ip_parse(const char *s, struct addr_ip *ip);

struct addr_ipmask {
    bool any;
    struct addr_ip net;     /* host bits cleared */
    unsigned prefix;        /* 0..32 / 0..128 */
};
/* Parse "any", "IP", "IP/NN", "IPv4/DOTTED-MASK".  0, or -1 with *why. */
int addr_ipmask_parse(const char *s, struct addr_ipmask *m, const char **why);
bool addr_ipmask_match(const struct addr_ipmask *m, const struct addr_ip *ip);

/* Checks for config validation: 0, or -1 with *why ("prefix length must
 * be 0..32", ...); the caller adds the value and where it was found. */
int addr_ipmask_check(const char *s, const char **why);
int addr_mask_check(const char *s, const char **why);        /* address mask */
int addr_domainmask_check(const char *s, const char **why);

/* A list of masks. */
enum {
    ADDR_LIST_IP = 1 << 0,   /* items may be IP masks ("any" = every IP) */
    ADDR_LIST_ADDR = 1 << 1, /* items may be address masks ("any" = "*") */
};

struct addr_masklist {
    struct addr_ipmask *ips;
    size_t nips;
    char **masks;           /* address masks, lower-cased */
    size_t nmasks;
};

/* Build from a NULL-terminated list.  With both flags, an item that is
 * "any", has a ':' or only digits, '.' and '/' is an IP mask, anything
 * else an address mask.  0, or -1 with *why and *bad = the index of the
 * bad item (the list is then empty). */
int addr_masklist_init(struct addr_masklist *l, const char *const *items, unsigned flags,
                       const char **why, size_t *bad);
void addr_masklist_free(struct addr_masklist *l);
/* Does any IP mask match ip (text, e.g. "192.0.2.1" or "2001:db8::1")?
 * false for unparsable text. */
bool addr_masklist_match_ip(const struct addr_masklist *l, const char *ip);
bool addr_masklist_match_ipbin(const struct addr_masklist *l, const struct addr_ip *ip);
/* Does any address mask match addr (without <>)? */
bool addr_masklist_match_addr(const struct addr_masklist *l, const char *addr);
bool addr_masklist_empty(const struct addr_masklist *l);

#endif
