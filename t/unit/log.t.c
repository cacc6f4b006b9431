/*
 * log.t - log lines (lib/util/log.c) carry the pid of the process that
 * writes them: the pid is cached, and a forked child (scand's workers)
 * must not log under its parent's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "util/log.h"

int main(void)
{
    char path[] = "/tmp/log.t.XXXXXX", line[512], want[64];
    int fd = mkstemp(path), parent = 0, child = 0;
    pid_t pid;
    FILE *f;

    if (fd < 0) {
        ok(0, "temp file");
        return tap_done();
    }
    close(fd);
    log_open("logtest", LOG_DEST_FILE, path);
    log_msg("before the fork");
    if ((pid = fork()) == 0) {
        log_msg("in the child");
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    log_msg("after the fork");
    f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        snprintf(want, sizeof want, "mailgw/logtest[%ld]: ", (long)getpid());
        if (strstr(line, want) && !strstr(line, "in the child"))
            parent++;
        snprintf(want, sizeof want, "mailgw/logtest[%ld]: in the child", (long)pid);
        if (strstr(line, want))
            child++;
    }
    if (f)
        fclose(f);
    is_int(parent, 2, "the parent's lines carry its pid");
    is_int(child, 1, "the forked child's line carries the child's pid");
    unlink(path);
    return tap_done();
}
