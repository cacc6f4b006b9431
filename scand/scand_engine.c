/*
 * scand_engine - the libclamav engine: load BasesPath, set every limit,
 * compile (ClamAV's clamd pattern: a reload builds a new engine and only
 * then replaces the old one).
 *
 * Interface: scand_engine_global_init() (cl_init, once per process),
 * scand_engine_build() (a compiled engine or NULL with the reason),
 * scand_engine_free(), scand_engine_set_tmpdir().
 *
 * Limits ([mailgw.ave], reference §1.12): MaxFileSize, MaxScanSize,
 * MaxRecursion, MaxFiles and ScanTimeout (CL_ENGINE_MAX_SCANTIME, per
 * object) are always set.  Scan options: every parser on (archives only
 * when ScanArchives), heuristic alerts on with exceeds-max, encrypted
 * archive/document and broken-executable alerts, so a limit or an
 * encrypted archive is reported, never silently "clean".  Mail parsing is
 * on for the raw message and off for decoded parts (lib/mime parses MIME).
 *
 * Diagnostics: a load failure names the path and libclamav's reason; the
 * caller keeps its old engine.
 */
#include "scand.h"

#include <string.h>

#include <clamav.h>

#include "conf/conf.h"
#include "util/log.h"
#include "util/mem.h"

/* libclamav's own messages go to our log, not to stderr. */
static void scand_engine_msg(enum cl_msg severity, const char *fullmsg, const char *msg,
                             void *context)
{
    size_t n = strlen(msg);

    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        n--;
    if (severity == CL_MSG_ERROR)
        log_warn("libclamav: %.*s", (int)n, msg);
    else
        log_debug("libclamav: %.*s", (int)n, msg);
}

int scand_engine_global_init(void)
{
    static bool done;
    cl_error_t ret;

    if (done)
        return 0;
    cl_set_clcb_msg(scand_engine_msg);
    ret = cl_init(CL_INIT_DEFAULT);
    if (ret != CL_SUCCESS) {
        log_error("libclamav cl_init: %s", cl_strerror(ret));
        return -1;
    }
    done = true;
    return 0;
}

static int scand_engine_limits(struct cl_engine *cl, const struct conf *c, struct buf *why)
{
    static const struct {
        enum cl_engine_field field;
        const char *name;
    } limits[] = {
        { CL_ENGINE_MAX_FILESIZE, "MaxFileSize" },
        { CL_ENGINE_MAX_SCANSIZE, "MaxScanSize" },
        { CL_ENGINE_MAX_RECURSION, "MaxRecursion" },
        { CL_ENGINE_MAX_FILES, "MaxFiles" },
    };
    cl_error_t ret;

    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        long long v = conf_int(c, "mailgw.ave", limits[i].name);
        ret = cl_engine_set_num(cl, limits[i].field, v);
        if (ret != CL_SUCCESS) {
            buf_printf(why, "%s %lld: %s", limits[i].name, v, cl_strerror(ret));
            return -1;
        }
    }
    /* The clean cache would skip a file already scanned (the raw
     * message's pass, an earlier message) and with it the archive member
     * callbacks the IncludeByName filter relies on. */
    ret = cl_engine_set_num(cl, CL_ENGINE_DISABLE_CACHE, 1);
    if (ret != CL_SUCCESS) {
        buf_printf(why, "disable cache: %s", cl_strerror(ret));
        return -1;
    }
    ret = cl_engine_set_num(cl, CL_ENGINE_MAX_SCANTIME,
                            conf_int(c, "mailgw.ave", "ScanTimeout") * 1000);
    if (ret != CL_SUCCESS) {
        buf_printf(why, "ScanTimeout: %s", cl_strerror(ret));
        return -1;
    }
    return 0;
}

static void scand_engine_options(struct scand_engine *e, const struct conf *c)
{
    uint64_t parse = CL_SCAN_PARSE_ARCHIVE | CL_SCAN_PARSE_ELF | CL_SCAN_PARSE_PDF
                     | CL_SCAN_PARSE_SWF | CL_SCAN_PARSE_HWP3 | CL_SCAN_PARSE_XMLDOCS
                     | CL_SCAN_PARSE_OLE2 | CL_SCAN_PARSE_HTML | CL_SCAN_PARSE_PE
                     | CL_SCAN_PARSE_ONENOTE;

    if (!conf_bool(c, "mailgw.ave", "ScanArchives"))
        parse &= ~(uint64_t)CL_SCAN_PARSE_ARCHIVE;
    e->parse_part = parse;
    e->parse_raw = parse | CL_SCAN_PARSE_MAIL;
    e->general = CL_SCAN_GENERAL_HEURISTICS;
    e->heuristic = CL_SCAN_HEURISTIC_BROKEN | CL_SCAN_HEURISTIC_EXCEEDS_MAX
                   | CL_SCAN_HEURISTIC_ENCRYPTED_ARCHIVE | CL_SCAN_HEURISTIC_ENCRYPTED_DOC;
    e->scan_timeout = (unsigned)conf_int(c, "mailgw.ave", "ScanTimeout");
}

struct scand_engine *scand_engine_build(const struct conf *c, struct buf *why)
{
    const char *path = conf_str(c, "path", "BasesPath");
    struct scand_engine *e;
    unsigned sigs = 0;
    cl_error_t ret;

    if (scand_engine_global_init() < 0) {
        buf_printf(why, "libclamav initialisation failed");
        return NULL;
    }
    e = xcalloc(1, sizeof(*e));
    e->cl = cl_engine_new();
    if (e->cl == NULL) {
        buf_printf(why, "cl_engine_new failed");
        free(e);
        return NULL;
    }
    if (scand_engine_limits(e->cl, c, why) < 0)
        goto fail;
    ret = cl_load(path, e->cl, &sigs, CL_DB_STDOPT);
    if (ret != CL_SUCCESS) {
        buf_printf(why, "cannot load bases from %s: %s", path, cl_strerror(ret));
        goto fail;
    }
    if (sigs == 0) {
        buf_printf(why, "no signatures in %s", path);
        goto fail;
    }
    ret = cl_engine_compile(e->cl);
    if (ret != CL_SUCCESS) {
        buf_printf(why, "cannot compile the bases of %s: %s", path, cl_strerror(ret));
        goto fail;
    }
    scand_scan_hooks(e->cl);
    e->sigs = sigs;
    e->db_time = (time_t)cl_engine_get_num(e->cl, CL_ENGINE_DB_TIME, NULL);
    scand_engine_options(e, c);
    return e;
fail:
    cl_engine_free(e->cl);
    free(e);
    return NULL;
}

void scand_engine_free(struct scand_engine *e)
{
    if (e == NULL)
        return;
    cl_engine_free(e->cl);
    free(e);
}

void scand_engine_set_tmpdir(struct scand_engine *e, const char *dir)
{
    cl_error_t ret = cl_engine_set_str(e->cl, CL_ENGINE_TMPDIR, dir);

    if (ret != CL_SUCCESS)
        log_warn("libclamav temp dir %s: %s", dir, cl_strerror(ret));
}
