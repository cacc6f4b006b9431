/*
 * conf_value - typed values: booleans, numbers, sizes with units, times
 * with units, enum words; range checks in the parameter's bare-number unit.
 *
 * Interface: conf_value_parse() (conf_impl.h), conf_unit_scale() (conf.h).
 *
 * Sizes: B, K/KB, M/MB, G/GB (case-insensitive, blanks allowed between
 * number and unit; 1K = 1024 bytes); a bare number is in the parameter's
 * unit.  Times: s, m, h, d, w; a bare number is in the parameter's unit.
 * Every multiplication is overflow-checked; the result must fit a long long.
 *
 * Diagnostics (the text after "FILE:LINE: NAME: "):
 *   "value 0 out of range 1..1024"
 *   "value 300M out of range 64..204800 KB"
 *   "invalid size 'x' (number with unit B, K, KB, M, MB, G, GB; bare = KB)"
 *   "invalid boolean 'x' (allowed: true, false, yes, no, y, n, 1, 0)"
 *   "invalid value 'x' (allowed: none, may, encrypt, verify)"
 */
#include "conf/conf_impl.h"
#include "util/mem.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct conf_unit {
    const char *name;
    long long scale;
};

static const struct conf_unit size_units[] = {
    { "B", 1 }, { "K", 1024 }, { "KB", 1024 }, { "M", 1048576 }, { "MB", 1048576 },
    { "G", 1073741824LL }, { "GB", 1073741824LL }, { NULL, 0 },
};

static const struct conf_unit time_units[] = {
    { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 }, { "w", 604800 }, { NULL, 0 },
};

static long long conf_unit_find(const struct conf_unit *u, const char *name)
{
    for (; u->name; u++) {
        if (strcasecmp(u->name, name) == 0)
            return u->scale;
    }
    return 0;
}

long long conf_unit_scale(const struct conf_param *p)
{
    long long s = 0;
    if (p->unit && p->type == CONF_SIZE)
        s = conf_unit_find(size_units, p->unit);
    else if (p->unit && p->type == CONF_TIME)
        s = conf_unit_find(time_units, p->unit);
    return s > 0 ? s : 1;
}

/* Leading decimal digits into *num; returns the rest, NULL on overflow or
 * when there is no digit. */
static const char *conf_parse_digits(const char *s, long long *num)
{
    long long v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
            return NULL;
        p++;
    }
    if (p == s)
        return NULL;
    *num = v;
    return p;
}

static int conf_parse_bool(const char *text, long long *num)
{
    static const char *const yes[] = { "true", "yes", "y", "1", NULL };
    static const char *const no[] = { "false", "no", "n", "0", NULL };
    for (size_t i = 0; yes[i]; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *num = 1;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *num = 0;
            return 0;
        }
    }
    return -1;
}

/* number [blanks] [unit] -> value in base units; -1 if malformed or the
 * product overflows. */
static int conf_parse_scaled(const struct conf_param *p, const struct conf_unit *units,
                             const char *text, long long *num)
{
    long long v, scale;
    const char *rest = conf_parse_digits(text, &v);
    if (rest == NULL)
        return -1;
    while (conf_is_blank((unsigned char)*rest))
        rest++;
    scale = *rest ? conf_unit_find(units, rest) : conf_unit_scale(p);
    if (scale == 0 || __builtin_mul_overflow(v, scale, num))
        return -1;
    return 0;
}

/* Word position in "a|b|c" (case-insensitive), -1 if absent. */
static long long conf_word_index(const char *words, const char *text, const char **start)
{
    size_t tl = strlen(text);
    long long i = 0;
    for (const char *w = words; *w; i++) {
        const char *bar = strchr(w, '|');
        size_t wl = bar ? (size_t)(bar - w) : strlen(w);
        if (wl == tl && strncasecmp(w, text, tl) == 0) {
            *start = w;
            return i;
        }
        if (bar == NULL)
            break;
        w = bar + 1;
    }
    return -1;
}

static void conf_words_list(struct buf *err, const char *words)
{
    for (const char *w = words; *w; w++) {
        if (*w == '|')
            buf_append_str(err, ", ");
        else
            buf_append_byte(err, (unsigned char)*w);
    }
}

static int conf_parse_enum(const struct conf_param *p, const char *text, long long *num,
                           char **canon, struct buf *err)
{
    const char *start;
    long long i = conf_word_index(p->words, text, &start);
    if (i < 0) {
        buf_printf(err, "invalid value '%s' (allowed: ", text);
        conf_words_list(err, p->words);
        buf_append_str(err, ")");
        return -1;
    }
    *num = i;
    if (canon)
        *canon = xstrndup(start, strlen(text));
    return 0;
}

static void conf_type_help(const struct conf_param *p, const char *text, struct buf *err)
{
    switch (p->type) {
    case CONF_BOOL:
        buf_printf(err, "invalid boolean '%s' (allowed: true, false, yes, no, y, n, 1, 0)", text);
        break;
    case CONF_SIZE:
        buf_printf(err, "invalid size '%s' (number with unit B, K, KB, M, MB, G, GB; bare = %s)",
                   text, p->unit ? p->unit : "B");
        break;
    case CONF_TIME:
        buf_printf(err, "invalid time '%s' (number with unit s, m, h, d, w; bare = %s)", text,
                   p->unit ? p->unit : "s");
        break;
    default:
        buf_printf(err, "invalid number '%s'", text);
        if (p->min || p->max)
            buf_printf(err, " (range %lld..%lld)", p->min, p->max);
        break;
    }
}

static int conf_range_check(const struct conf_param *p, const char *text, long long v,
                            struct buf *err)
{
    long long scale = conf_unit_scale(p), lo, hi;
    if (p->min == 0 && p->max == 0)
        return 0;
    if (__builtin_mul_overflow(p->min, scale, &lo) || __builtin_mul_overflow(p->max, scale, &hi))
        return 0;
    if (v >= lo && v <= hi)
        return 0;
    buf_printf(err, "value %s out of range %lld..%lld", text, p->min, p->max);
    if (p->unit && strcmp(p->unit, "B") != 0)
        buf_printf(err, " %s", p->unit);
    return -1;
}

/* A number limited to listed values (LogLevel 1|2|3|4|9). */
static int conf_int_words_check(const struct conf_param *p, const char *text, struct buf *err)
{
    const char *start;
    if (p->type != CONF_INT || p->words == NULL || conf_word_index(p->words, text, &start) >= 0)
        return 0;
    buf_printf(err, "invalid value '%s' (allowed: ", text);
    conf_words_list(err, p->words);
    buf_append_str(err, ")");
    return -1;
}

int conf_value_parse(const struct conf_param *p, const char *text, long long *num,
                     char **canon, struct buf *err)
{
    int rc = 0;
    long long v = 0;
    if (canon)
        *canon = NULL;
    switch (p->type) {
    case CONF_BOOL:
        rc = conf_parse_bool(text, &v);
        break;
    case CONF_INT: {
        const char *rest = conf_parse_digits(text, &v);
        rc = rest && *rest == 0 ? 0 : -1;
        break;
    }
    case CONF_SIZE:
        rc = conf_parse_scaled(p, size_units, text, &v);
        break;
    case CONF_TIME:
        rc = conf_parse_scaled(p, time_units, text, &v);
        break;
    case CONF_ENUM:
        return conf_parse_enum(p, text, num, canon, err);
    default:
        *num = 0;
        return 0;
    }
    if (rc < 0) {
        conf_type_help(p, text, err);
        return -1;
    }
    if (conf_range_check(p, text, v, err) < 0 || conf_int_words_check(p, text, err) < 0)
        return -1;
    *num = v;
    return 0;
}
