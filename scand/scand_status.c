/*
 * scand_status - object statuses (reference §2.1), the libclamav result
 * mapping, the IncludeBy/ExcludeBy filter masks, per-message results and
 * the shared counters.
 *
 * Interface: scand_status_name(), scand_status_from_cl(),
 * scand_filter_load(), scand_filter_match(), scand_result_*(),
 * scand_count(), scand_counter_names[].
 *
 * Mapping (libclamav 1.x):
 *   CL_CLEAN, CL_BREAK, CL_VERIFIED          clean
 *   CL_VIRUS "Heuristics.Encrypted.*"        protected
 *   CL_VIRUS "Heuristics.Broken.*"           corrupted
 *   CL_VIRUS "Heuristics.Limits.Exceeded*"   error (a limit, not a verdict)
 *   CL_VIRUS other "Heuristics.*"            suspicious
 *   CL_VIRUS anything else                   infected
 *   CL_EFORMAT, CL_EPARSE, CL_EUNPACK        corrupted
 *   every other error (CL_EMAXSIZE, CL_EMAXFILES, CL_EMAXREC,
 *   CL_ETIMEOUT, CL_EMEM, I/O ...)           error
 * Nothing unknown ever maps to clean.
 */
#include "scand.h"

#include <fnmatch.h>
#include <string.h>

#include <clamav.h>

#include "conf/conf.h"
#include "mime/mime.h"
#include "util/mem.h"

static const char *const scand_status_names[SCAND_NSTATUS] = {
    "clean", "filtered", "corrupted", "error", "protected", "suspicious", "infected",
};

const char *const scand_counter_names[SC_NCOUNTERS] = {
    "antiviral_checking_sessions_current",
    "antiviral_checking_sessions_maximum",
    "antiviral_scanned_messages",
    "antiviral_clean_messages",
    "antiviral_filtered_messages",
    "antiviral_corrupted_messages",
    "antiviral_error_messages",
    "antiviral_protected_messages",
    "antiviral_suspicious_messages",
    "antiviral_infected_messages",
    "antiviral_scanned_objects",
    "antiviral_scanned_bytes",
    "antiviral_tempfail_messages",
    "antiviral_workers_started",
    "antiviral_workers_killed",
    "antiviral_workers_crashed",
};

const char *scand_status_name(enum scand_status st)
{
    return (unsigned)st < SCAND_NSTATUS ? scand_status_names[st] : "error";
}

static bool scand_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static enum scand_status scand_status_from_name(const char *virname)
{
    if (virname == NULL || *virname == 0)
        return SCAND_INFECTED;
    if (scand_prefix(virname, "Heuristics.Encrypted."))
        return SCAND_PROTECTED;
    if (scand_prefix(virname, "Heuristics.Broken."))
        return SCAND_CORRUPTED;
    if (scand_prefix(virname, "Heuristics.Limits.Exceeded"))
        return SCAND_ERROR;
    if (scand_prefix(virname, "Heuristics."))
        return SCAND_SUSPICIOUS;
    return SCAND_INFECTED;
}

enum scand_status scand_status_from_cl(int clret, const char *virname)
{
    switch (clret) {
    case CL_CLEAN:
    case CL_BREAK:
    case CL_VERIFIED:
        return SCAND_CLEAN;
    case CL_VIRUS:
        return scand_status_from_name(virname);
    case CL_EFORMAT:
    case CL_EPARSE:
    case CL_EUNPACK:
        return SCAND_CORRUPTED;
    default:
        return SCAND_ERROR;
    }
}

void scand_filter_load(struct scand_filter *f, const struct conf *c)
{
    f->ninc_name = conf_list(c, "mailgw.policy", "IncludeByName", &f->inc_name);
    f->nexc_name = conf_list(c, "mailgw.policy", "ExcludeByName", &f->exc_name);
    f->ninc_mime = conf_list(c, "mailgw.policy", "IncludeByMime", &f->inc_mime);
    f->nexc_mime = conf_list(c, "mailgw.policy", "ExcludeByMime", &f->exc_mime);
}

void scand_filter_load_group(struct scand_filter *f, const struct conf *c, int group)
{
    f->ninc_name = conf_group_list(c, group, "IncludeByName", &f->inc_name);
    f->nexc_name = conf_group_list(c, group, "ExcludeByName", &f->exc_name);
    f->ninc_mime = conf_group_list(c, group, "IncludeByMime", &f->inc_mime);
    f->nexc_mime = conf_group_list(c, group, "ExcludeByMime", &f->exc_mime);
}

static bool scand_masks_match(const char *const *masks, size_t n, const char *s)
{
    if (s == NULL || *s == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (fnmatch(masks[i], s, FNM_CASEFOLD) == 0)
            return true;
    }
    return false;
}

/* The base name: masks such as "*.exe" are about the file, not about a
 * directory an archive stored it under. */
static const char *scand_basename(const char *name)
{
    const char *slash = name ? strrchr(name, '/') : NULL;
    const char *bslash = name ? strrchr(name, '\\') : NULL;

    if (bslash != NULL && (slash == NULL || bslash > slash))
        slash = bslash;
    return slash != NULL ? slash + 1 : name;
}

bool scand_filter_match(const struct scand_filter *f, const char *name, const char *mime)
{
    const char *base = scand_basename(name);
    bool caught = scand_masks_match(f->inc_name, f->ninc_name, base)
                  || scand_masks_match(f->inc_mime, f->ninc_mime, mime);

    if (!caught)
        return false;
    return !(scand_masks_match(f->exc_name, f->nexc_name, base)
             || scand_masks_match(f->exc_mime, f->nexc_mime, mime));
}

void scand_result_init(struct scand_result *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->names);
}

void scand_result_free(struct scand_result *r)
{
    for (size_t i = 0; i < r->nobjs; i++) {
        free(r->objs[i].name);
        free(r->objs[i].type);
        free(r->objs[i].virus);
        free(r->objs[i].filt);
    }
    free(r->objs);
    if (r->msg != NULL)
        mime_msg_free(r->msg);
    buf_free(&r->names);
    memset(r, 0, sizeof(*r));
}

static void scand_result_add_name(struct scand_result *r, const char *virus)
{
    size_t n = strlen(virus);
    const char *p = r->names.len ? (const char *)r->names.data : NULL;

    /* Unique names: look for ", NAME," style boundaries. */
    while (p != NULL) {
        const char *hit = strstr(p, virus);
        if (hit == NULL)
            break;
        bool start = hit == (const char *)r->names.data || hit[-1] == ' ';
        bool end = hit[n] == 0 || hit[n] == ',';
        if (start && end)
            return;
        p = hit + 1;
    }
    if (r->names.len)
        buf_append_str(&r->names, ", ");
    buf_append_str(&r->names, virus);
}

void scand_result_add(struct scand_result *r, const char *name, const char *type,
                      enum scand_status st, const char *virus)
{
    scand_result_add_ex(r, name, type, st, virus, false);
}

struct scand_object *scand_result_add_ex(struct scand_result *r, const char *name,
                                         const char *type, enum scand_status st,
                                         const char *virus, bool hidden)
{
    if (r->nobjs == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->objs = xreallocarray(r->objs, r->cap, sizeof(*r->objs));
    }
    struct scand_object *o = &r->objs[r->nobjs++];
    o->name = xstrdup(name ? name : "");
    o->type = xstrdup(type ? type : "application/octet-stream");
    o->status = st;
    o->virus = xstrdup(virus ? virus : "");
    o->av = st;
    o->part = NULL;
    o->filt = NULL;
    o->hidden = hidden;
    if (!hidden && st > r->status)
        r->status = st;
    if (!hidden && virus != NULL && *virus != 0)
        scand_result_add_name(r, virus);
    return o;
}

void scand_count(struct scand_shared *sh, enum scand_counter c, int64_t delta)
{
    if (sh == NULL || (unsigned)c >= SC_NCOUNTERS)
        return;
    __atomic_fetch_add(&sh->counters[c], (uint64_t)delta, __ATOMIC_RELAXED);
}
