/*
 * conf_file - reading mailgw.conf and list files ("file:/abs/path") line by
 * line, and the diagnostics format every conf message uses.
 *
 * Interface: conf_reader_open/next/close (conf_impl.h), conf_list_file()
 * and conf_list_file_free() (conf.h).
 *
 * Diagnostics: "PATH: cannot open: REASON", "PATH: not a regular file",
 * "PATH: file larger than 16777216 bytes", "PATH:LINE: line longer than
 * 65536 bytes", "PATH:LINE: NUL byte in line", "PATH:LINE: line is not
 * valid UTF-8".
 *
 * Security: files are read whole but never more than CONF_FILE_MAX bytes
 * and only when they are regular files (so /dev/zero or a FIFO cannot hang
 * or exhaust a daemon); lines are length-checked before use; bytes are
 * never trusted to be text.
 */
#include "conf/conf_impl.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool conf_is_blank(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
}

char *conf_trim(char *s)
{
    while (conf_is_blank((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && conf_is_blank((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

static void conf_vdiag(struct buf *diag, const char *where, unsigned line, const char *name,
                       const char *kind, const char *fmt, va_list ap)
{
    if (diag == NULL)
        return;
    buf_append_str(diag, where);
    if (line)
        buf_printf(diag, ":%u", line);
    buf_append_str(diag, ": ");
    buf_append_str(diag, kind);
    if (name)
        buf_printf(diag, "%s: ", name);
    char tmp[1024];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    if (n >= (int)sizeof tmp) {
        /* long values in a message are cut, the line stays one line */
        buf_append(diag, tmp, sizeof tmp - 4);
        buf_append_str(diag, "...");
    } else if (n > 0) {
        buf_append(diag, tmp, (size_t)n);
    }
    buf_append_byte(diag, '\n');
}

void conf_diag(struct buf *diag, const char *where, unsigned line, const char *name,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conf_vdiag(diag, where, line, name, "", fmt, ap);
    va_end(ap);
}

void conf_warn(struct buf *diag, const char *where, unsigned line, const char *name,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conf_vdiag(diag, where, line, name, "warning: ", fmt, ap);
    va_end(ap);
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
bool conf_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static int conf_read_fd(int fd, struct conf_reader *r, struct buf *diag)
{
    for (;;) {
        buf_reserve(&r->text, 65536);
        ssize_t n = read(fd, r->text.data + r->text.len, 65536);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            conf_diag(diag, r->path, 0, NULL, "cannot read: %m");
            return -1;
        }
        if (n == 0)
            return 0;
        r->text.len += (size_t)n;
        r->text.data[r->text.len] = 0;
        if (r->text.len > CONF_FILE_MAX) {
            conf_diag(diag, r->path, 0, NULL, "file larger than %u bytes", CONF_FILE_MAX);
            return -1;
        }
    }
}

int conf_reader_open(struct conf_reader *r, const char *path, struct buf *diag)
{
    struct stat st;
    memset(r, 0, sizeof *r);
    r->path = path;
    buf_init(&r->text);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        conf_diag(diag, path, 0, NULL, "cannot open: %m");
        return -1;
    }
    int rc = -1;
    if (fstat(fd, &st) < 0)
        conf_diag(diag, path, 0, NULL, "cannot stat: %m");
    else if (!S_ISREG(st.st_mode))
        conf_diag(diag, path, 0, NULL, "not a regular file");
    else
        rc = conf_read_fd(fd, r, diag);
    close(fd);
    if (rc < 0)
        buf_free(&r->text);
    return rc;
}

/* Check one raw line; -1 (reported) when it must be skipped. */
static int conf_line_check(struct conf_reader *r, const char *line, size_t len, struct buf *diag)
{
    if (len > CONF_LINE_MAX) {
        conf_diag(diag, r->path, r->lineno, NULL, "line longer than %d bytes", CONF_LINE_MAX);
    } else if (memchr(line, 0, len) != NULL) {
        conf_diag(diag, r->path, r->lineno, NULL, "NUL byte in line");
    } else if (!conf_utf8_valid(line, len)) {
        conf_diag(diag, r->path, r->lineno, NULL, "line is not valid UTF-8");
    } else {
        return 0;
    }
    r->errors++;
    return -1;
}

char *conf_reader_next(struct conf_reader *r, struct buf *diag)
{
    while (r->pos < r->text.len) {
        char *line = r->text.data + r->pos;
        size_t rest = r->text.len - r->pos;
        char *nl = memchr(line, '\n', rest);
        size_t len = nl ? (size_t)(nl - line) : rest;
        r->pos += len + (nl ? 1 : 0);
        r->lineno++;
        if (conf_line_check(r, line, len, diag) < 0)
            continue;
        line[len] = 0;
        return conf_trim(line);
    }
    return NULL;
}

void conf_reader_close(struct conf_reader *r)
{
    buf_free(&r->text);
}

void conf_list_file_free(char **items)
{
    if (items == NULL)
        return;
    for (char **p = items; *p; p++)
        free(*p);
    free(items);
}

long conf_list_file(const char *path, char ***items, unsigned **lines, struct buf *diag)
{
    struct conf_reader r;
    if (conf_reader_open(&r, path, diag) < 0)
        return -1;
    size_t n = 0;
    char **v = xcalloc(1, sizeof *v);
    unsigned *ln = NULL;
    char *line;
    while ((line = conf_reader_next(&r, diag)) != NULL) {
        if (*line == 0 || *line == '#' || *line == ';')
            continue;
        v = xreallocarray(v, n + 2, sizeof *v);
        ln = xreallocarray(ln, n + 1, sizeof *ln);
        v[n] = xstrdup(line);
        ln[n] = r.lineno;
        v[++n] = NULL;
    }
    unsigned errors = r.errors;
    conf_reader_close(&r);
    if (errors) {
        conf_list_file_free(v);
        free(ln);
        return -1;
    }
    *items = v;
    if (lines)
        *lines = ln;
    else
        free(ln);
    return (long)n;
}

long conf_list_file_at(const char *path, const char *where, unsigned line, const char *name,
                       char ***items, unsigned **lines, struct buf *diag)
{
    struct buf tmp = BUF_INIT;
    long n = conf_list_file(path, items, lines, &tmp);
    size_t plen = strlen(path);
    for (size_t pos = 0; pos < tmp.len;) {
        const char *l = tmp.data + pos;
        const char *nl = memchr(l, '\n', tmp.len - pos);
        size_t len = nl ? (size_t)(nl - l) + 1 : tmp.len - pos;
        if (diag && len > plen + 2 && memcmp(l, path, plen) == 0 && l[plen] == ':' &&
            l[plen + 1] == ' ')
            conf_diag(diag, where, line, name, "%.*s", (int)(len - 1), l);
        else if (diag)
            buf_append(diag, l, len);
        pos += len;
    }
    buf_free(&tmp);
    return n;
}
