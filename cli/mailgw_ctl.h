/*
 * mailgw_ctl - the `mailgw` command's side of master's control socket
 * (QueuePath/public/control, protocol "mailgw-control" version 1) and of
 * the pid file.  See master(8) for the requests.
 */
#ifndef MAILGW_CLI_CTL_H
#define MAILGW_CLI_CTL_H

#include <stdbool.h>
#include <sys/types.h>

#include "proto/proto.h"

struct conf;

#define MAILGW_CTL_PROTO "mailgw-control"
#define MAILGW_CTL_VERSION 1

/* Load the config; on errors print them (prefixed by the path) to stderr
 * and return NULL.  Warnings are printed only when verbose. */
struct conf *mailgw_ctl_conf(const char *path, bool verbose);

/* The pid file path of c (PidFile or QueuePath/pid/master.pid). */
char *mailgw_ctl_pid_path(const struct conf *c);

/* The pid of the running master (its pid file is locked), else 0. */
pid_t mailgw_ctl_running(const struct conf *c);

/* Connect and exchange hellos.  Returns the socket, or -1 with errno
 * (ENOENT / ECONNREFUSED: master not running; EACCES: not allowed). */
int mailgw_ctl_connect(const struct conf *c);

/* Send {op=OP} and read the reply (timeout in ms).  0, or -1 with *why. */
int mailgw_ctl_request(int fd, const char *op, struct proto_msg *reply, int timeout_ms,
                       const char **why);

/* Run one control command the way the `mailgw` command does: connect,
 * send, print the answer.  Returns the exit status. */
int mailgw_ctl_simple(const char *config, const char *op);

#endif
