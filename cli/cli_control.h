/*
 * cli_control - the user commands' side of master's control socket
 * QueuePath/public/control (proto frames, protocol "mailgw-control",
 * version 1; requests and replies in master(8) and CONTRACTS.md).
 */
#ifndef MAILGW_CLI_CONTROL_H
#define MAILGW_CLI_CONTROL_H

#include "proto/proto.h"

struct conf;

#define CLI_CONTROL_PROTO "mailgw-control"
#define CLI_CONTROL_VERSION 1

enum cli_control_err {
    CLI_CONTROL_OK = 0,
    CLI_CONTROL_DOWN,       /* no socket / nobody listening: not running */
    CLI_CONTROL_DENIED,     /* no access to the socket, or master dropped
                             * us after checking SO_PEERCRED */
    CLI_CONTROL_FAILED,     /* anything else (timeout, bad answer, ...) */
};

/* QueuePath/public/control of c (malloc'ed). */
char *cli_control_path(const struct conf *c);

/* Connect to path and exchange hellos (timeout in ms for master's answer).
 * Returns the socket, or -1 with *err set and *why a static or
 * strerror() text for the user. */
int cli_control_open(const char *path, int timeout_ms, enum cli_control_err *err,
                     const char **why);

/* Send req, read one reply frame (with its fds) into reply.  0, or -1
 * with *why ("timeout", "closed", ...). */
int cli_control_call(int fd, const struct proto_msg *req, struct proto_msg *reply,
                     int timeout_ms, const char **why);

#endif
