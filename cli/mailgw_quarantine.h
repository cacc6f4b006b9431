/*
 * mailgw_quarantine - `mailgw quarantine ...`, the store manager
 * (klmaila's role, reference §3.10; mailgw-quarantine(1)).
 */
#ifndef MAILGW_CLI_QUARANTINE_H
#define MAILGW_CLI_QUARANTINE_H

/* Exit statuses (reference §3.10). */
#define QUARANTINE_EXIT_OK 0
#define QUARANTINE_EXIT_USAGE 1     /* bad command line */
#define QUARANTINE_EXIT_DIR 2       /* directory unreadable */
#define QUARANTINE_EXIT_SYSTEM 3    /* system error */
#define QUARANTINE_EXIT_ACTION 4    /* requested action not performed */

/* argv[0] is "quarantine"; the config is $MAILGW_CONF (set by mailgw's
 * dispatcher from -c), else the default path.  Returns the exit status. */
int mailgw_cmd_quarantine(int argc, char **argv);

#endif
