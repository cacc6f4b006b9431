/*
 * scand_scan - anti-virus scan of one message: the raw message (libclamav
 * parses it as mail too, a second opinion on our MIME parse), then every
 * MIME part lib/mime marks for scanning, decoded into a private temporary
 * file and given to cl_scandesc with mail parsing off.
 *
 * Interface: scand_scan_message(), scand_scan_hooks() (installs the
 * libclamav callbacks on an engine), scand_tmpfile().
 *
 * Filtering: a part whose file name or MIME type the IncludeBy masks
 * catch (and no ExcludeBy mask frees) gets status filtered; file names
 * inside archives that libclamav reports (clcb_meta, clcb_file_inspection)
 * are checked too and reported as objects "ARCHIVE/NAME".  A filtered
 * object is still scanned: a virus in it makes it infected.
 *
 * Time: the message as a whole has ScanTimeout; parts left when it runs
 * out are reported as one object with status error.  libclamav limits
 * each object to the same time (CL_ENGINE_MAX_SCANTIME).
 *
 * Security: the message is peer data; decoded parts never leave the
 * worker: anonymous memory files (memfd) up to SCAND_MEMFILE_MAX (at most
 * the message's size, as decoding never grows it), else anonymous files
 * in its private directory (O_TMPFILE or unlinked at once).
 */
#include "scand.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include <clamav.h>

#include "mime/mime.h"
#include "util/log.h"
#include "util/mem.h"

#define SCAND_MAX_INNER 100     /* filtered archive members reported */

/* Per-object context handed to the libclamav callbacks. */
struct scand_cb {
    const struct scand_ctx *ctx;
    const char *outer;          /* name of the object being scanned */
    struct scand_result *r;
    size_t inner;               /* filtered members reported so far */
    unsigned char *filt;        /* per filter: the object or a member caught */
    char found[256];            /* last name clcb_virus_found reported */
};

int scand_tmpfile(const char *dir, uint64_t size)
{
    char path[4096];
    int fd;

    /* In memory up to SCAND_MEMFILE_MAX: no inode to allocate (on ext4
     * that cost a quarter of scand's CPU per message: every allocation
     * skips the recently deleted inodes) and nothing to write back. */
    if (size <= SCAND_MEMFILE_MAX && (fd = memfd_create("scand", MFD_CLOEXEC)) >= 0)
        return fd;
    fd = open(dir, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);

    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    snprintf(path, sizeof(path), "%s/scand.XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

/* An archive member: checked against every group's filter. */
static void scand_cb_inner(struct scand_cb *cb, const char *name)
{
    char label[512];
    unsigned char *hit;
    bool any = false;

    if (name == NULL || cb == NULL || cb->ctx == NULL || cb->ctx->nfilters == 0)
        return;
    hit = xcalloc(cb->ctx->nfilters, 1);
    for (size_t k = 0; k < cb->ctx->nfilters; k++) {
        hit[k] = scand_filter_match(&cb->ctx->filters[k], name, NULL);
        cb->filt[k] |= hit[k];
        any = any || hit[k];
    }
    if (!any || cb->inner >= SCAND_MAX_INNER) {
        free(hit);
        return;
    }
    cb->inner++;
    snprintf(label, sizeof(label), "%s/%s", cb->outer, name);
    struct scand_object *o = scand_result_add_ex(cb->r, label, "application/octet-stream",
                                                 hit[0] ? SCAND_FILTERED : SCAND_CLEAN, "",
                                                 !hit[0]);
    o->av = SCAND_CLEAN;
    o->filt = hit;
}

static cl_error_t scand_cb_meta(const char *container_type, unsigned long fsize_container,
                                const char *filename, unsigned long fsize_real,
                                int is_encrypted, unsigned int filepos_container,
                                void *context)
{
    scand_cb_inner(context, filename);
    return CL_CLEAN;
}

static cl_error_t scand_cb_inspect(int fd, const char *type, const char **ancestors,
                                   size_t parent_file_size, const char *file_name,
                                   size_t file_size, const char *file_buffer,
                                   uint32_t recursion_level, uint32_t layer_attributes,
                                   void *context)
{
    /* Level 0 is the object itself: filtered by the caller already. */
    if (recursion_level > 0)
        scand_cb_inner(context, file_name);
    return CL_CLEAN;
}

/* libclamav 1.4 returns CL_VIRUS without a name for a top-level object
 * over MaxFileSize; the callback still gets it. */
static void scand_cb_found(int fd, const char *virname, void *context)
{
    struct scand_cb *cb = context;

    if (cb != NULL && virname != NULL)
        snprintf(cb->found, sizeof(cb->found), "%s", virname);
}

void scand_scan_hooks(struct cl_engine *cl)
{
    cl_engine_set_clcb_virus_found(cl, scand_cb_found);
    cl_engine_set_clcb_meta(cl, scand_cb_meta);
    cl_engine_set_clcb_file_inspection(cl, scand_cb_inspect);
}

/* Scan fd as one object; returns its status and sets virus (static or
 * engine-owned name, "" when none). */
static enum scand_status scand_scan_fd(struct scand_ctx *ctx, int fd, const char *name,
                                       bool raw, struct scand_cb *cb, const char **virus)
{
    const struct scand_engine *e = ctx->engine;
    struct cl_scan_options opt;
    const char *virname = NULL;
    unsigned long scanned = 0;
    cl_error_t ret;

    memset(&opt, 0, sizeof(opt));
    opt.general = e->general;
    opt.parse = raw ? e->parse_raw : e->parse_part;
    opt.heuristic = e->heuristic;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        *virus = "";
        return SCAND_ERROR;
    }
    ret = cl_scandesc_callback(fd, NULL, &virname, &scanned, e->cl, &opt, cb);
    if (ret == CL_VIRUS && virname == NULL && cb->found[0] != 0)
        virname = cb->found;
    *virus = ret == CL_VIRUS && virname != NULL ? virname : "";
    if (ret != CL_CLEAN && ret != CL_VIRUS)
        log_debug("%s: libclamav: %s", name, cl_strerror(ret));
    return scand_status_from_cl(ret, virname);
}

/* filt: per filter, the part itself is caught (owned by the object). */
static void scand_scan_object(struct scand_ctx *ctx, struct scand_result *r, int fd,
                              const char *name, const char *type, bool raw,
                              unsigned char *filt, struct mime_part *part)
{
    struct scand_cb cb = { ctx, name, r, 0, filt, "" };
    const char *virus = "";
    enum scand_status st, av;
    size_t at = r->nobjs;

    av = st = scand_scan_fd(ctx, fd, name, raw, &cb, &virus);
    if (filt[0] && st < SCAND_FILTERED)
        st = SCAND_FILTERED;
    scand_result_add(r, name, type, st, virus);
    r->objs[r->nobjs - 1].av = av;
    r->objs[r->nobjs - 1].filt = filt;
    r->objs[r->nobjs - 1].part = part;
    for (size_t i = at; i + 1 < r->nobjs; i++)
        r->objs[i].part = part;
    /* Keep the object itself before the members the callbacks added. */
    if (r->nobjs - 1 > at) {
        struct scand_object self = r->objs[r->nobjs - 1];
        memmove(&r->objs[at + 1], &r->objs[at], (r->nobjs - 1 - at) * sizeof(self));
        r->objs[at] = self;
    }
}

static bool scand_deadline_passed(const struct timespec *start, unsigned limit)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec - start->tv_sec >= (time_t)limit;
}

static const char *scand_part_name(const struct mime_part *p, size_t idx, char *buf,
                                   size_t size)
{
    if (p->filename != NULL && *p->filename != 0)
        return p->filename;
    snprintf(buf, size, "(part %zu)", idx);
    return buf;
}

static bool scand_part_filtered1(const struct scand_filter *f, const struct mime_part *p)
{
    if (scand_filter_match(f, p->filename, p->type))
        return true;
    for (size_t i = 0; i < p->nnames; i++) {
        if (scand_filter_match(f, p->names[i], NULL))
            return true;
    }
    return false;
}

static unsigned char *scand_part_filtered(const struct scand_ctx *ctx, const struct mime_part *p)
{
    unsigned char *filt = xcalloc(ctx->nfilters ? ctx->nfilters : 1, 1);
    for (size_t k = 0; k < ctx->nfilters; k++)
        filt[k] = scand_part_filtered1(&ctx->filters[k], p);
    return filt;
}

/* Decode one part into tfd (emptied first) and scan it. */
static int scand_scan_part(struct scand_ctx *ctx, struct scand_result *r, struct mime_part *p,
                           size_t idx, int tfd)
{
    char label[64];
    const char *name = scand_part_name(p, idx, label, sizeof(label));
    off_t size;

    if (ftruncate(tfd, 0) < 0 || lseek(tfd, 0, SEEK_SET) < 0)
        return -1;
    if (mime_part_decode_to_fd(p, tfd) < 0)
        return -1;
    size = lseek(tfd, 0, SEEK_CUR);
    if (size > 0)
        r->bytes += (uint64_t)size;
    scand_scan_object(ctx, r, tfd, name, p->type, false, scand_part_filtered(ctx, p), p);
    return 0;
}

static int scand_scan_parts(struct scand_ctx *ctx, int fd, uint64_t size, const char *id,
                            struct scand_result *r, const struct timespec *start,
                            const char **why)
{
    struct mime_msg *msg = mime_msg_parse_fd(fd, 0, (size_t)size, NULL);
    int tfd = -1, ret = 0;
    size_t idx = 0;

    if (msg == NULL) {
        *why = "cannot read the message for MIME parsing";
        return -1;
    }
    tfd = scand_tmpfile(ctx->tmpdir, size);
    if (tfd < 0) {
        log_error("%s: temporary file in %s: %m", id, ctx->tmpdir);
        *why = "cannot create a temporary file";
        mime_msg_free(msg);
        return -1;
    }
    for (struct mime_part *p = msg->root; p != NULL; p = mime_part_next(p)) {
        if (!p->scan)
            continue;
        idx++;
        if (scand_deadline_passed(start, ctx->engine->scan_timeout)) {
            scand_result_add(r, "(remaining parts)", "application/octet-stream", SCAND_ERROR,
                             "");
            break;
        }
        if (scand_scan_part(ctx, r, p, idx, tfd) < 0) {
            log_error("%s: decoding part %zu into a temporary file: %m", id, idx);
            *why = "cannot decode a MIME part";
            ret = -1;
            break;
        }
    }
    r->anomalies = msg->anom;
    close(tfd);
    r->msg = msg;       /* the policy rewrites from it; freed with r */
    return ret;
}

int scand_scan_message(struct scand_ctx *ctx, int fd, uint64_t size, const char *id,
                       struct scand_result *r, const char **why)
{
    struct timespec start;

    clock_gettime(CLOCK_MONOTONIC, &start);
    r->bytes += size;
    r->nfilters = ctx->nfilters ? ctx->nfilters : 1;
    scand_scan_object(ctx, r, fd, "(message)", "message/rfc822", true,
                      xcalloc(r->nfilters, 1), NULL);
    if (size == 0)
        return 0;
    return scand_scan_parts(ctx, fd, size, id, r, &start, why);
}
