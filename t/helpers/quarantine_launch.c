/*
 * quarantine_launch - test launcher: binds the quarantine daemon's two
 * listeners the way master does, then execs the daemon with them.
 *
 * Usage: quarantine_launch QUEUEPATH DAEMON -c CONFIG [-f]
 *   fd 4 = QUEUEPATH/private/quarantine (0600), fd 5 =
 *   QUEUEPATH/public/quarantine (0660); the daemon runs with "-L 2".
 * The directories private/ and public/ are created when missing.
 * Exit 1 with a message on stderr when a socket cannot be bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int bind_unix(const char *dir, const char *rel, mode_t mode)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

    if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", dir, rel)
        >= (int)sizeof(sun.sun_path)) {
        fprintf(stderr, "quarantine_launch: path too long\n");
        exit(1);
    }
    unlink(sun.sun_path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 64) < 0
        || chmod(sun.sun_path, mode) < 0) {
        fprintf(stderr, "quarantine_launch: %s: %s\n", sun.sun_path, strerror(errno));
        exit(1);
    }
    return fd;
}

static void place(int fd, int want)
{
    if (fd != want && (dup2(fd, want) < 0 || close(fd) < 0)) {
        fprintf(stderr, "quarantine_launch: dup2: %s\n", strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    char path[4096];
    char **args;
    int a, b;

    if (argc < 3) {
        fprintf(stderr, "usage: quarantine_launch QUEUEPATH DAEMON ARGS...\n");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/private", argv[1]);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/public", argv[1]);
    mkdir(path, 0710);
    /* keep fds 4 and 5 free before binding */
    for (int fd = 3; fd < 8; fd++)
        close(fd);
    a = bind_unix(argv[1], "private/quarantine", 0600);
    b = bind_unix(argv[1], "public/quarantine", 0660);
    if (a == 5) {
        int t = fcntl(a, F_DUPFD, 10);
        close(a);
        a = t;
    }
    place(b, 5);
    place(a, 4);
    args = calloc((size_t)argc + 2, sizeof(*args));
    for (int i = 2; i < argc; i++)
        args[i - 2] = argv[i];
    args[argc - 2] = "-L";
    args[argc - 1] = "2";
    execv(args[0], args);
    fprintf(stderr, "quarantine_launch: exec %s: %s\n", args[0], strerror(errno));
    return 127;
}
