/*
 * scand_status.t - the libclamav result -> object status mapping
 * (reference §2.1), the worst-status order, the IncludeBy/ExcludeBy
 * filter masks, unique virus names and a real libclamav scan of EICAR
 * with an engine built from a temporary bases directory.
 *
 * scand's modules are not in libmailgw.a, so the ones under test are
 * compiled in here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <clamav.h>

#include "tap.h"

#include "../../scand/scand_status.c"
#include "../../scand/scand_engine.c"
#include "../../scand/scand_scan.c"

bool scand_started_as_root;

static void test_mapping(void)
{
    is_str(scand_status_name(scand_status_from_cl(CL_CLEAN, NULL)), "clean", "CL_CLEAN");
    is_str(scand_status_name(scand_status_from_cl(CL_VIRUS, "Eicar-Signature")), "infected",
           "a signature name");
    is_str(scand_status_name(scand_status_from_cl(CL_VIRUS, "Heuristics.Encrypted.Zip")),
           "protected", "encrypted archive");
    is_str(scand_status_name(scand_status_from_cl(CL_VIRUS, "Heuristics.Broken.Executable")),
           "corrupted", "broken executable");
    is_str(scand_status_name(scand_status_from_cl(CL_VIRUS,
                                                  "Heuristics.Limits.Exceeded.MaxFiles")),
           "error", "limit exceeded");
    is_str(scand_status_name(scand_status_from_cl(CL_VIRUS, "Heuristics.Zip.OverlappingFiles")),
           "suspicious", "other heuristics");
    is_str(scand_status_name(scand_status_from_cl(CL_VIRUS, NULL)), "infected",
           "CL_VIRUS without a name is still infected");
    is_str(scand_status_name(scand_status_from_cl(CL_EFORMAT, NULL)), "corrupted", "CL_EFORMAT");
    is_str(scand_status_name(scand_status_from_cl(CL_EMAXSIZE, NULL)), "error", "CL_EMAXSIZE");
    is_str(scand_status_name(scand_status_from_cl(CL_EMAXFILES, NULL)), "error", "CL_EMAXFILES");
    is_str(scand_status_name(scand_status_from_cl(CL_EMAXREC, NULL)), "error", "CL_EMAXREC");
    is_str(scand_status_name(scand_status_from_cl(CL_ETIMEOUT, NULL)), "error", "CL_ETIMEOUT");
    is_str(scand_status_name(scand_status_from_cl(CL_EMEM, NULL)), "error", "CL_EMEM");
    is_str(scand_status_name(scand_status_from_cl(12345, NULL)), "error",
           "an unknown code is an error, never clean");
}

static void test_result(void)
{
    struct scand_result r;

    scand_result_init(&r);
    scand_result_add(&r, "(message)", "message/rfc822", SCAND_CLEAN, "");
    is_str(scand_status_name(r.status), "clean", "one clean object");
    scand_result_add(&r, "a.zip", NULL, SCAND_PROTECTED, "Heuristics.Encrypted.Zip");
    scand_result_add(&r, "b.exe", NULL, SCAND_INFECTED, "Win.Test");
    scand_result_add(&r, "c.exe", NULL, SCAND_INFECTED, "Win.Test");
    scand_result_add(&r, "d.exe", NULL, SCAND_ERROR, "");
    is_str(scand_status_name(r.status), "infected", "worst status wins");
    is_str(r.names.data, "Heuristics.Encrypted.Zip, Win.Test", "names unique, in order");
    is_int(r.nobjs, 5, "every object kept");
    is_str(r.objs[1].type, "application/octet-stream", "default type");
    scand_result_free(&r);
}

static void test_filter(void)
{
    static const char *const inc_name[] = { "*.exe", "*.SCR" };
    static const char *const exc_name[] = { "allowed*.exe" };
    static const char *const inc_mime[] = { "video/*" };
    static const char *const exc_mime[] = { "video/mp4" };
    struct scand_filter f = { inc_name, exc_name, inc_mime, exc_mime, 2, 1, 1, 1 };
    struct scand_filter none;

    ok(scand_filter_match(&f, "virus.exe", NULL), "*.exe caught");
    ok(scand_filter_match(&f, "PIC.scr", "image/png"), "case-insensitive");
    ok(scand_filter_match(&f, "dir/sub/x.exe", NULL), "archive paths: base name");
    ok(!scand_filter_match(&f, "allowed-tool.exe", NULL), "ExcludeByName frees");
    ok(scand_filter_match(&f, "movie.avi", "video/x-msvideo"), "IncludeByMime");
    ok(!scand_filter_match(&f, "movie.mp4", "video/mp4"), "ExcludeByMime frees");
    ok(!scand_filter_match(&f, "notes.txt", "text/plain"), "others pass");
    ok(!scand_filter_match(&f, NULL, NULL), "no name, no type: not filtered");
    memset(&none, 0, sizeof(none));
    ok(!scand_filter_match(&none, "virus.exe", "video/x"), "empty masks filter nothing");
}

/* Build an engine from a temporary bases directory and scan EICAR. */
static void test_engine(void)
{
    static const char eicar_hex[] =
        "58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e44"
        "4152442d414e544956495255532d544553542d46494c452124482b482a";
    char dir[] = "/tmp/scand_status.t.XXXXXX", path[256], conf_path[256], data[80];
    struct scand_engine *e;
    struct scand_ctx ctx;
    struct scand_result r;
    struct buf why = BUF_INIT, diag = BUF_INIT;
    const char *err = NULL;
    FILE *f;

    ok(mkdtemp(dir) != NULL, "temporary bases dir");
    snprintf(path, sizeof(path), "%s/t.ndb", dir);
    f = fopen(path, "w");
    fprintf(f, "Unit.EICAR:0:*:%s\n", eicar_hex);
    fclose(f);
    snprintf(conf_path, sizeof(conf_path), "%s/mailgw.conf", dir);
    f = fopen(conf_path, "w");
    fprintf(f, "[mailgw.network]\nHostname=h.example.test\nPostmaster=p@example.test\n"
               "ProtectedDomains=example.test\n[mailgw.path]\nQueuePath=%s\n[path]\n"
               "BasesPath=%s\n", dir, dir);
    fclose(f);
    struct conf *c = conf_load(conf_path, &diag);
    ok(c != NULL, "config loads");
    e = c ? scand_engine_build(c, &why) : NULL;
    ok(e != NULL, "engine built (%s)", why.data ? why.data : "ok");
    if (e == NULL)
        goto out;
    is_int(e->sigs, 1, "one signature");
    for (size_t i = 0; i < 68; i++)
        sscanf(eicar_hex + 2 * i, "%2hhx", (unsigned char *)&data[i]);
    /* small: in memory; over SCAND_MEMFILE_MAX: an anonymous file in dir */
    char link[64], target[4096];
    ssize_t tn;
    int big = scand_tmpfile(dir, (uint64_t)SCAND_MEMFILE_MAX + 1);
    snprintf(link, sizeof(link), "/proc/self/fd/%d", big);
    tn = big >= 0 ? readlink(link, target, sizeof(target) - 1) : -1;
    target[tn > 0 ? tn : 0] = 0;
    ok(tn > 0 && strncmp(target, dir, strlen(dir)) == 0, "a large one is on disk (%s)", target);
    if (big >= 0)
        close(big);
    int fd = scand_tmpfile(dir, 68);
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    tn = fd >= 0 ? readlink(link, target, sizeof(target) - 1) : -1;
    target[tn > 0 ? tn : 0] = 0;
    ok(strncmp(target, "/memfd:", 7) == 0, "a small one is in memory (%s)", target);
    ok(fd >= 0 && write(fd, data, 68) == 68, "EICAR in an anonymous file");
    memset(&ctx, 0, sizeof(ctx));
    ctx.engine = e;
    ctx.tmpdir = dir;
    scand_result_init(&r);
    ok(scand_scan_message(&ctx, fd, 68, "UNIT", &r, &err) == 0, "scanned");
    is_str(scand_status_name(r.status), "infected", "EICAR is infected");
    is_str(r.names.data, "Unit.EICAR.UNOFFICIAL", "its name");
    scand_result_free(&r);
    close(fd);
    scand_engine_free(e);
out:
    conf_free(c);
    buf_free(&why);
    buf_free(&diag);
    unlink(path);
    unlink(conf_path);
    rmdir(dir);
}

int main(void)
{
    test_mapping();
    test_result();
    test_filter();
    test_engine();
    return tap_done();
}
