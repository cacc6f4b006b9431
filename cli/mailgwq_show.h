/*
 * mailgwq_show - `mailgwq -c ID`: a queue file printed the way postcat(1)
 * prints one (envelope records, then the message content).
 */
#ifndef MAILGW_MAILGWQ_SHOW_H
#define MAILGW_MAILGWQ_SHOW_H

#include <stdio.h>

/* Parse the queue file open on fd with the lib/queue reader and print it
 * to out.  0, or -1 with *why (a static reason; nothing or a part was
 * printed). */
int mailgwq_show(int fd, const char *id, FILE *out, const char **why);

#endif
