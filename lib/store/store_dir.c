/*
 * store_dir - the store's directories and names: area names, klmaila's
 * status codes, entry IDs, listing and removing entries.
 *
 * Interface: store_area_name(), store_area_parse(), store_status_code(),
 * store_id_valid(), store_list_ids(), store_ids_free(), store_remove().
 *
 * Listing takes only names that are valid IDs (the tmp/ directory and
 * anything an admin left there are ignored) and sorts them, which is
 * storing order.  Removal fsyncs the directory so a deleted entry does
 * not come back after a crash.
 *
 * Security: an ID is checked with store_id_valid() before it becomes
 * part of a path ([0-9A-Za-z] only: no "/" or "..").
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/mem.h"

static const char *const store_area_names[STORE_NAREAS] = {
    [STORE_QUARANTINE] = "quarantine",
    [STORE_BACKUP] = "backup",
    [STORE_ARCHIVE_IN] = "archive-in",
    [STORE_ARCHIVE_OUT] = "archive-out",
};

const char *store_area_name(enum store_area area)
{
    return (unsigned)area < STORE_NAREAS ? store_area_names[area] : "?";
}

int store_area_parse(const char *name)
{
    for (int i = 0; name != NULL && i < STORE_NAREAS; i++)
        if (strcmp(name, store_area_names[i]) == 0)
            return i;
    return -1;
}

const char *store_status_code(enum store_area area, const char *status)
{
    static const struct { const char *word, *code; } map[] = {
        { "clean", "CLN" },      { "clear", "CLN" },       { "disinfected", "CRD" },
        { "cured", "CRD" },      { "suspicious", "SSP" },  { "protected", "PRT" },
        { "error", "ERR" },      { "corrupted", "ERR" },   { "filtered", "FLT" },
        { "infected", "INF" },
    };

    if (area == STORE_ARCHIVE_IN)
        return "RCV";
    if (area == STORE_ARCHIVE_OUT)
        return "SNT";
    for (size_t i = 0; status != NULL && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcasecmp(status, map[i].word) == 0)
            return map[i].code;
    return "ERR";
}

bool store_id_valid(const char *id)
{
    return id != NULL && queue_id_valid(id);
}

static int store_id_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

long store_list_ids(const char *dir, char ***ids)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0, cap = 0;
    char **v = NULL;

    *ids = NULL;
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    while ((de = readdir(d)) != NULL) {
        if (!store_id_valid(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            v = xreallocarray(v, cap, sizeof(*v));
        }
        v[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof(*v), store_id_cmp);
    *ids = v;
    return (long)n;
}

void store_ids_free(char **ids, long n)
{
    for (long i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

int store_remove(const char *dir, const char *id)
{
    int dfd, rc = -1, err;

    if (!store_id_valid(id)) {
        errno = EINVAL;
        return -1;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    if (unlinkat(dfd, id, 0) == 0 && fsync(dfd) == 0)
        rc = 0;
    err = errno;
    close(dfd);
    errno = err;
    return rc;
}
