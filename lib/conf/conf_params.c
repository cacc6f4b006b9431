/*
 * conf_params - the one typed table of every mailgw.conf parameter
 * (DESIGN §6).  Parsing, validation, `mailgw config` and the parameter
 * list of mailgw.conf(5) all come from here; a unit test fails when the
 * committed man page lacks a parameter of this table.
 *
 * Names, ranges and defaults follow Kaspersky Mail Gateway (reference §1);
 * ranges are in the bare-number unit the reference gives (KB, MB, s, d).
 * Entries of one section stay together: conf_print prints in table order.
 *
 * Adding a parameter: one line here, then regenerate the man page with
 * t/conf/gen-man.sh.
 */
#include "conf/conf.h"

#define P(sec, nm, ty, def, lo, hi, unit, words, own, fl, syn, doc) \
    { sec, nm, ty, def, lo, hi, unit, words, own, fl, doc, syn }

#define NET "mailgw.network"
#define FWD "mailgw.forward"
#define ACC "mailgw.access"
#define LIM "mailgw.limits"
#define TMO "mailgw.timeouts"
#define RES "mailgw.resolve"
#define PTH "mailgw.path"
#define OPT "mailgw.options"
#define TLS "mailgw.tls"
#define AVE "mailgw.ave"
#define POL "mailgw.policy"

#define O_IN (OWN_MASTER | OWN_SMTPD)
#define O_DNS (OWN_SMTPD | OWN_SMTP | OWN_SPFD)
#define O_ALL (OWN_MASTER | OWN_SMTPD | OWN_QMGR | OWN_SMTP | OWN_SCAND | OWN_SPFD | \
               OWN_QUARANTINE | OWN_CLI | OWN_AGENTX)

const struct conf_param conf_params[] = {
    /* [mailgw.network] */
    P(NET, "ListenOn", CONF_LIST, "0.0.0.0:25", 0, 0, NULL, NULL, O_IN, CONF_SPLIT, SYN_LISTEN,
      "address:port (or [IPv6]:port) the SMTP receiver listens on; repeat for several"),
    P(NET, "Hostname", CONF_STR, NULL, 0, 0, NULL, NULL, OWN_SMTPD | OWN_QMGR | OWN_SMTP,
      CONF_REQUIRED, SYN_HOSTNAME,
      "this gateway's name, used in the greeting, HELO and generated mail"),
    P(NET, "Postmaster", CONF_STR, NULL, 0, 0, NULL, NULL, OWN_SMTPD | OWN_QMGR, CONF_REQUIRED,
      SYN_EMAIL, "address of the administrator; sender of bounces and notices"),
    P(NET, "ProtectedDomains", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SMTPD | OWN_QMGR | OWN_SCAND,
      CONF_REQUIRED | CONF_SPLIT, SYN_DOMAINMASK,
      "domain masks (* and ?) whose mail this gateway accepts and protects"),

    /* [mailgw.forward] */
    P(FWD, "ForwardRoute", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_QMGR | OWN_SMTP, 0, SYN_ROUTE,
      "'MASK domain' (MX of domain), 'MASK [host]' or 'MASK [host:port]'; first match wins, "
      "no match = MX of the recipient domain"),

    /* [mailgw.access] */
    P(ACC, "RelayRule", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SMTPD, 0, SYN_RELAYRULE,
      "'allow|deny from IP|IP/MASK|any|file:/PATH to RCPTMASK|file:/PATH'; first rule "
      "matching client and recipient wins; none = only ProtectedDomains"),
    P(ACC, "Rule", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SMTPD, 0, SYN_RELAYRULE,
      "version 5.0 relay rule, same syntax as RelayRule; checked after RelayRule"),
    P(ACC, "ConnectRule", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SMTPD, 0, SYN_CONNECTRULE,
      "'allow|deny from in_dnsbl|out_dnsbl|has_name|no_name|any to RCPTMASK'"),
    P(ACC, "HeloRule", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SMTPD, 0, SYN_HELORULE,
      "'allow|deny from has_ip|no_ip|same_ip|diff_ip|any to RCPTMASK'"),
    P(ACC, "MailfromRule", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SMTPD, 0, SYN_MAILFROMRULE,
      "'allow|deny from has_ip|no_ip|has_mx|no_mx|any to RCPTMASK'"),
    P(ACC, "DNSBlackList", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SMTPD, 0, SYN_DNSBL,
      "DNSBL zone, or zone=127.0.0.2,127.0.0.4 to count only those answers; used by "
      "ConnectRule in_dnsbl/out_dnsbl"),
    P(ACC, "AllowClients", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SMTPD, CONF_SPLIT, SYN_IPMASK,
      "client IP, IP/NN or IP/MASK always allowed to connect (checked before DenyClients)"),
    P(ACC, "DenyClients", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SMTPD, CONF_SPLIT, SYN_IPMASK,
      "client IP, IP/NN or IP/MASK refused at connect"),
    P(ACC, "DenyUnresolvedConnect", CONF_BOOL, "false", 0, 0, NULL, NULL, OWN_SMTPD, 0, SYN_NONE,
      "refuse clients whose IP has no reverse DNS name (5.0; see ConnectRule no_name)"),
    P(ACC, "DenyUnresolvedMailfrom", CONF_BOOL, "false", 0, 0, NULL, NULL, OWN_SMTPD, 0, SYN_NONE,
      "refuse MAIL FROM domains without MX or address (5.0; see MailfromRule)"),

    /* [mailgw.limits] */
    P(LIM, "AntiviralSessions", CONF_INT, "10", 10, 1024, NULL, NULL, OWN_QMGR | OWN_SCAND, 0,
      SYN_NONE, "concurrent anti-virus scanning sessions"),
    P(LIM, "IncomingSessions", CONF_INT, "100", 1, 1024, NULL, NULL, OWN_SMTPD, 0, SYN_NONE,
      "concurrent inbound SMTP sessions"),
    P(LIM, "OutgoingSessions", CONF_INT, "20", 1, 1024, NULL, NULL, OWN_QMGR | OWN_SMTP, 0,
      SYN_NONE, "concurrent outbound SMTP sessions"),
    P(LIM, "MaximalIncomingHops", CONF_INT, "20", 1, 100, NULL, NULL, OWN_SMTPD, 0, SYN_NONE,
      "maximal Received: headers of a message (loop protection)"),
    P(LIM, "MaximalIncomingMessageSize", CONF_SIZE, "10240", 64, 204800, "KB", NULL, OWN_SMTPD, 0,
      SYN_NONE, "maximal size of one message"),
    P(LIM, "MaximalIncomingMessagesPerSession", CONF_INT, "100", 1, 1024, NULL, NULL, OWN_SMTPD,
      0, SYN_NONE, "maximal messages in one SMTP session"),
    P(LIM, "MaximalIncomingRcptsPerMessage", CONF_INT, "100", 1, 1024, NULL, NULL, OWN_SMTPD, 0,
      SYN_NONE, "maximal RCPT TO commands of one message"),
    P(LIM, "MaximalIncomingSessionSize", CONF_SIZE, "10240", 64, 2048000, "KB", NULL, OWN_SMTPD,
      0, SYN_NONE, "maximal total message bytes in one SMTP session"),
    P(LIM, "MaximalIncomingSessionsPerIP", CONF_INT, "4", 1, 1024, NULL, NULL, OWN_SMTPD, 0,
      SYN_NONE, "concurrent inbound sessions from one client IP"),
    P(LIM, "MaximalOutgoingSessionsPerHost", CONF_INT, "4", 1, 1024, NULL, NULL,
      OWN_QMGR | OWN_SMTP, 0, SYN_NONE, "concurrent outbound sessions to one host"),
    P(LIM, "MinimalQueueFreeSpaceSize", CONF_SIZE, "0", 0, 1000000, "MB", NULL,
      OWN_SMTPD | OWN_QMGR, 0, SYN_NONE,
      "below this free space on the queue file system new mail gets 452 (0 = off)"),
    P(LIM, "MaximalErrorsPerSession", CONF_INT, "20", 1, 1000, NULL, NULL, OWN_SMTPD, 0,
      SYN_NONE, "SMTP errors after which the session is closed with 421"),
    P(LIM, "MaximalCommandLineLength", CONF_SIZE, "2048", 512, 65536, "B", NULL, OWN_SMTPD, 0,
      SYN_NONE, "longest SMTP command line accepted (500 5.5.2 beyond)"),
    P(LIM, "MaximalTextLineLength", CONF_SIZE, "2048", 1000, 65536, "B", NULL, OWN_SMTPD, 0,
      SYN_NONE, "longest message text line accepted"),
    P(LIM, "BounceSizeLimit", CONF_SIZE, "50000", 0, 10240000, "B", NULL, OWN_QMGR, 0, SYN_NONE,
      "bytes of the original message returned in a failure report (0 = the default 50000)"),

    /* [mailgw.timeouts] */
    P(TMO, "MaximalBackoffTime", CONF_TIME, "21600", 60, 64800, "s", NULL, OWN_QMGR, 0, SYN_NONE,
      "upper bound of the retry interval of deferred mail"),
    P(TMO, "MinimalBackoffTime", CONF_TIME, "1800", 64, 64800, "s", NULL, OWN_QMGR, 0, SYN_NONE,
      "lower bound of the retry interval of deferred mail"),
    P(TMO, "MaximalQueueLifetime", CONF_TIME, "5", 1, 14, "d", NULL, OWN_QMGR, 0, SYN_NONE,
      "how long delivery is retried before the message bounces"),
    P(TMO, "DelayWarningTime", CONF_TIME, "4", 0, 168, "h", NULL, OWN_QMGR, 0, SYN_NONE,
      "send one delay report (NOTIFY=DELAY) for mail still queued after this long; 0 = off"),
    P(TMO, "ReadTimeout", CONF_TIME, "120", 1, 1200, "s", NULL, OWN_SMTPD | OWN_SMTP, 0, SYN_NONE,
      "network read timeout"),
    P(TMO, "WriteTimeout", CONF_TIME, "120", 1, 1200, "s", NULL, OWN_SMTPD | OWN_SMTP, 0,
      SYN_NONE, "network write timeout"),
    P(TMO, "ReceivingCommandTimeout", CONF_TIME, "300", 1, 1200, "s", NULL, OWN_SMTPD, 0,
      SYN_NONE, "wait for HELO/EHLO, MAIL FROM, the first RCPT TO and QUIT"),
    P(TMO, "ReceivingDataInitiationTimeout", CONF_TIME, "600", 1, 2400, "s", NULL, OWN_SMTPD, 0,
      SYN_NONE, "wait for each later RCPT TO and for DATA"),
    P(TMO, "ReceivingDataTerminationTimeout", CONF_TIME, "300", 1, 7200, "s", NULL, OWN_SMTPD, 0,
      SYN_NONE, "wait for the end of data (CRLF.CRLF)"),
    P(TMO, "SendingInitialTimeout", CONF_TIME, "300", 1, 1200, "s", NULL, OWN_SMTP, 0, SYN_NONE,
      "wait for the remote greeting"),
    P(TMO, "SendingHelloTimeout", CONF_TIME, "300", 1, 1200, "s", NULL, OWN_SMTP, 0, SYN_NONE,
      "wait for the reply to HELO/EHLO"),
    P(TMO, "SendingMailTimeout", CONF_TIME, "300", 1, 1200, "s", NULL, OWN_SMTP, 0, SYN_NONE,
      "wait for the reply to MAIL FROM"),
    P(TMO, "SendingRcptTimeout", CONF_TIME, "300", 1, 1200, "s", NULL, OWN_SMTP, 0, SYN_NONE,
      "wait for the reply to RCPT TO"),
    P(TMO, "SendingDataInitiationTimeout", CONF_TIME, "600", 1, 2400, "s", NULL, OWN_SMTP, 0,
      SYN_NONE, "wait for the reply to DATA"),
    P(TMO, "SendingDataTerminationTimeout", CONF_TIME, "300", 1, 7200, "s", NULL, OWN_SMTP, 0,
      SYN_NONE, "wait for the reply after CRLF.CRLF"),
    P(TMO, "SendingQuitTimeout", CONF_TIME, "300", 1, 1200, "s", NULL, OWN_SMTP, 0, SYN_NONE,
      "wait for the reply to QUIT"),

    /* [mailgw.resolve] */
    P(RES, "Nameserver", CONF_LIST, NULL, 0, 0, NULL, NULL, O_DNS, CONF_SPLIT, SYN_NAMESERVER,
      "DNS server IP, IP:port or [IPv6]:port to query; empty = those of /etc/resolv.conf"),
    P(RES, "InternalRecursionEnabled", CONF_BOOL, "false", 0, 0, NULL, NULL, O_DNS, 0, SYN_NONE,
      "resolve recursively instead of relying on the server's recursion"),
    P(RES, "InternalRecursionsLimit", CONF_INT, "32", 1, 100, NULL, NULL, O_DNS, 0, SYN_NONE,
      "maximal recursion depth of one query"),
    P(RES, "IONetworkTimeout", CONF_TIME, "10", 1, 1200, "s", NULL, O_DNS, 0, SYN_NONE,
      "DNS query timeout; a timeout is a temporary failure"),
    P(RES, "IPCacheRefreshPeriod", CONF_TIME, "43200", 60, 259200, "s", NULL, O_DNS, 0, SYN_NONE,
      "purge period of expired address records"),
    P(RES, "MXCacheRefreshPeriod", CONF_TIME, "43200", 60, 259200, "s", NULL, O_DNS, 0, SYN_NONE,
      "purge period of expired MX records"),
    P(RES, "UnreachableCacheRefreshPeriod", CONF_TIME, "43200", 60, 259200, "s", NULL, O_DNS, 0,
      SYN_NONE, "purge period of expired unreachable-host records"),
    P(RES, "UnresolvedCacheRefreshPeriod", CONF_TIME, "43200", 60, 259200, "s", NULL, O_DNS, 0,
      SYN_NONE, "purge period of expired name-not-found records"),
    P(RES, "UnresolvedTTL", CONF_TIME, "600", 0, 3600, "s", NULL, O_DNS, 0, SYN_NONE,
      "how long a name not found is remembered"),
    P(RES, "UnreachableTTL", CONF_TIME, "600", 0, 3600, "s", NULL, O_DNS | OWN_QMGR, 0, SYN_NONE,
      "how long an unreachable host is remembered; keep below MinimalBackoffTime"),

    /* [mailgw.path] */
    P(PTH, "QueuePath", CONF_STR, NULL, 0, 0, NULL, NULL, O_ALL, CONF_REQUIRED | CONF_PATH,
      SYN_NONE, "queue directory; a relative path is taken from the working directory at start"),
    P(PTH, "ControlPath", CONF_STR, "", 0, 0, NULL, NULL, OWN_MASTER, CONF_PATH, SYN_NONE,
      "directory polled for control files; empty = off"),
    P(PTH, "IncomingArchivePath", CONF_STR, "", 0, 0, NULL, NULL, OWN_QMGR | OWN_QUARANTINE,
      CONF_PATH, SYN_NONE, "directory keeping a copy of every received message; empty = off"),
    P(PTH, "OutgoingArchivePath", CONF_STR, "", 0, 0, NULL, NULL, OWN_QMGR | OWN_QUARANTINE,
      CONF_PATH, SYN_NONE, "directory keeping a copy of every sent message; empty = off"),
    P(PTH, "DsnTemplate", CONF_STR, "", 0, 0, NULL, NULL, OWN_QMGR, CONF_PATH, SYN_NONE,
      "text part of delivery status notifications (dsn.tmpl(5)); empty = the built-in text"),
    P(PTH, "PidFile", CONF_STR, "", 0, 0, NULL, NULL, OWN_MASTER | OWN_CLI, CONF_PATH, SYN_NONE,
      "master's pid file; empty = QueuePath/pid/master.pid"),

    /* [path] (Kaspersky's product-wide paths, reference §1.3) */
    P("path", "BasesPath", CONF_STR, "/var/lib/mailgw/bases", 0, 0, NULL, NULL,
      OWN_SCAND | OWN_UPDATER, CONF_PATH, SYN_NONE,
      "directory of the anti-virus databases (.cvd/.cld/.cud, .hdb, .ndb, .ldb, ...) "
      "loaded by scand; a relative path is taken from the working directory at start"),

    /* [mailgw.ave] (anti-virus engine, reference §1.12) */
    P(AVE, "ScanArchives", CONF_BOOL, "true", 0, 0, NULL, NULL, OWN_SCAND, 0, SYN_NONE,
      "scan inside archives (zip, gzip, bzip2, tar, 7z, rar, cab, ...)"),
    P(AVE, "Cure", CONF_BOOL, "false", 0, 0, NULL, NULL, OWN_SCAND, 0, SYN_NONE,
      "accepted for compatibility; mailgw does not disinfect (libclamav cannot cure), "
      "so no object ever gets the status disinfected"),
    P(AVE, "ScanMailBases", CONF_BOOL, "true", 0, 0, NULL, NULL, OWN_SCAND, 0, SYN_NONE,
      "accepted for compatibility; mailbox files (mbox, .eml, TNEF) inside messages are "
      "always scanned"),
    P(AVE, "UseIChecker", CONF_BOOL, "false", 0, 0, NULL, NULL, OWN_SCAND, 0, SYN_NONE,
      "accepted for compatibility and unused: every object is scanned every time"),
    P(AVE, "ScanTimeout", CONF_TIME, "120", 1, 3600, "s", NULL, OWN_SCAND, 0, SYN_NONE,
      "time limit for scanning one message; past it the object gets status error, and a "
      "worker still busy a few seconds later is killed (the message is retried)"),
    P(AVE, "MaxFileSize", CONF_SIZE, "100", 1, 4000, "MB", NULL, OWN_SCAND, 0, SYN_NONE,
      "largest object (or file inside an archive) scanned; larger ones get status error"),
    P(AVE, "MaxScanSize", CONF_SIZE, "400", 1, 4000, "MB", NULL, OWN_SCAND, 0, SYN_NONE,
      "most data scanned for one object, archive contents included; beyond it: error"),
    P(AVE, "MaxRecursion", CONF_INT, "17", 1, 100, NULL, NULL, OWN_SCAND, 0, SYN_NONE,
      "deepest nesting of archives and embedded files scanned; deeper: error"),
    P(AVE, "MaxFiles", CONF_INT, "10000", 1, 1000000, NULL, NULL, OWN_SCAND, 0, SYN_NONE,
      "most files scanned inside one object; more: error"),
    P(AVE, "MinWorkers", CONF_INT, "1", 1, 1024, NULL, NULL, OWN_SCAND, 0, SYN_NONE,
      "scanning worker processes kept running even when idle"),
    P(AVE, "MaxWorkers", CONF_INT, "10", 1, 1024, NULL, NULL, OWN_SCAND, 0, SYN_NONE,
      "most scanning worker processes (also capped by [mailgw.limits] AntiviralSessions)"),
    P(AVE, "MaxMessagesPerProcess", CONF_INT, "300", 1, 1000000, NULL, NULL, OWN_SCAND, 0,
      SYN_NONE, "a scanning worker exits after this many messages and a fresh one starts"),
    P(AVE, "MaxIdleTime", CONF_TIME, "300", 0, 86400, "s", NULL, OWN_SCAND, 0, SYN_NONE,
      "a worker above MinWorkers idle this long exits (0 = never)"),
    P(AVE, "WorkerMemoryLimit", CONF_SIZE, "1024", 64, 65536, "MB", NULL, OWN_SCAND, 0,
      SYN_NONE, "address space a worker may use beyond the loaded bases (RLIMIT_AS); a worker "
      "that runs out dies and the message is retried; as root also the size of the "
      "worker's private tmpfs for temporary files"),

    /* [mailgw.policy] and [mailgw.group:NAME]: the policy (reference §1.13, §2.2; every
     * entry overridable per group; lib/policy applies them) */
    P(POL, "Check", CONF_BOOL, "true", 0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP, SYN_NONE,
      "scan this group's mail at all; false = delivered unscanned (X-Anti-Virus says "
      "not_checked)"),
    P(POL, "Senders", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SCAND,
      CONF_GROUP | CONF_GROUP_ONLY | CONF_SPLIT, SYN_DOMAINMASK,
      "group sections only: envelope sender masks (*@example.com, example.com, *); a group "
      "matches when the sender matches one (and the recipient one of Recipients, if given)"),
    P(POL, "Recipients", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SCAND,
      CONF_GROUP | CONF_GROUP_ONLY | CONF_SPLIT, SYN_DOMAINMASK,
      "group sections only: recipient masks; groups are tried in file order, the first "
      "matching the sender/recipient pair wins, none = [mailgw.policy]"),
    P(POL, "AdminNotifyAddress", CONF_STR, "", 0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP,
      SYN_EMAIL, "where admin notifications of this group go; empty = Postmaster"),
    P(POL, "NotifyFromAddress", CONF_STR, "", 0, 0, NULL, NULL, OWN_SCAND | OWN_QMGR,
      CONF_GROUP, SYN_EMAIL, "From: and envelope sender of notifications; empty = Postmaster"),
    P(POL, "ActionInfected", CONF_ENUM, "remove", 0, 0, NULL, "pass|remove|placeholder|cure",
      OWN_SCAND, CONF_GROUP, SYN_NONE,
      "what happens to an infected object of a delivered message: pass (kept), remove, "
      "placeholder (replaced by PlaceholderTemplate's text); cure is accepted but the engine "
      "cannot disinfect, so it acts as remove"),
    P(POL, "ActionSuspicious", CONF_ENUM, "remove", 0, 0, NULL, "pass|remove|placeholder|cure",
      OWN_SCAND, CONF_GROUP, SYN_NONE, "the same for suspicious objects"),
    P(POL, "ActionProtected", CONF_ENUM, "remove", 0, 0, NULL, "pass|remove|placeholder|cure",
      OWN_SCAND, CONF_GROUP, SYN_NONE,
      "the same for objects that could not be scanned (encrypted, password-protected)"),
    P(POL, "ActionError", CONF_ENUM, "remove", 0, 0, NULL, "pass|remove|placeholder|cure",
      OWN_SCAND, CONF_GROUP, SYN_NONE,
      "the same for objects with status error or corrupted"),
    P(POL, "ActionFiltered", CONF_ENUM, "remove", 0, 0, NULL, "pass|remove|placeholder|cure",
      OWN_SCAND, CONF_GROUP, SYN_NONE,
      "the same for objects caught by IncludeByName / IncludeByMime"),
    P(POL, "ActionDisinfected", CONF_ENUM, "pass", 0, 0, NULL, "pass|remove|placeholder|cure",
      OWN_SCAND, CONF_GROUP, SYN_NONE,
      "the same for disinfected objects (accepted for compatibility: libclamav cannot cure, "
      "no object is ever disinfected; cure acts as remove)"),
    P(POL, "BlockMessage", CONF_LIST, "infected, suspicious, protected, error", 0, 0, NULL, NULL,
      OWN_SCAND, CONF_GROUP | CONF_SPLIT | CONF_STATUSLIST, SYN_NONE,
      "statuses (disinfected, infected, suspicious, protected, corrupted, error, filtered, "
      "all, none; error covers corrupted) for which the message is not delivered to this "
      "group's recipients"),
    P(POL, "NotifyAdmin", CONF_LIST, "infected, disinfected, suspicious, protected, corrupted",
      0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP | CONF_SPLIT | CONF_STATUSLIST, SYN_NONE,
      "statuses that send a notification to AdminNotifyAddress"),
    P(POL, "NotifySender", CONF_LIST, "none", 0, 0, NULL, NULL, OWN_SCAND,
      CONF_GROUP | CONF_SPLIT | CONF_STATUSLIST, SYN_NONE,
      "statuses that send a notification to the envelope sender (never to <>)"),
    P(POL, "NotifyRecipient", CONF_LIST, "infected, disinfected, suspicious, protected, corrupted",
      0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP | CONF_SPLIT | CONF_STATUSLIST, SYN_NONE,
      "statuses that send a notification to each of the group's recipients"),
    P(POL, "SaveInQB", CONF_LIST, "none", 0, 0, NULL, NULL, OWN_SCAND,
      CONF_GROUP | CONF_SPLIT | CONF_STATUSLIST, SYN_NONE,
      "statuses whose original message is copied into the store: quarantine when it is "
      "blocked, backup when it is delivered"),
    P(POL, "NotifyAdminTemplate", CONF_STR, "templates/notify-admin", 0, 0, NULL, NULL,
      OWN_SCAND, CONF_GROUP | CONF_TEMPLATE, SYN_NONE,
      "template file of admin notifications (mailgw-templates(5)), relative to the config "
      "file's directory; the default file absent = the built-in text"),
    P(POL, "NotifySenderTemplate", CONF_STR, "templates/notify-sender", 0, 0, NULL, NULL,
      OWN_SCAND, CONF_GROUP | CONF_TEMPLATE, SYN_NONE, "template file of sender notifications"),
    P(POL, "NotifyRecipientTemplate", CONF_STR, "templates/notify-recipient", 0, 0, NULL, NULL,
      OWN_SCAND, CONF_GROUP | CONF_TEMPLATE, SYN_NONE,
      "template file of recipient notifications"),
    P(POL, "PlaceholderTemplate", CONF_STR, "templates/placeholder", 0, 0, NULL, NULL,
      OWN_SCAND, CONF_GROUP | CONF_TEMPLATE, SYN_NONE,
      "template file of the text/plain part that replaces an object (Action*=placeholder)"),
    P(POL, "DisclaimerTemplate", CONF_STR, "templates/disclaimer", 0, 0, NULL, NULL,
      OWN_SCAND, CONF_GROUP | CONF_TEMPLATE, SYN_NONE,
      "template file of the disclaimer appended when AddDisclaimer is true"),
    P(POL, "AddDisclaimer", CONF_BOOL, "false", 0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP,
      SYN_NONE, "append DisclaimerTemplate's text to delivered messages (to a text/plain "
      "body, as a part of multipart/mixed, or wrapping the message in multipart/mixed)"),
    P(POL, "AddXHeader", CONF_BOOL, "true", 0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP, SYN_NONE,
      "add 'X-Anti-Virus: mailgw VERSION, bases: YYYYMMDD #RECORDS, check: YYYYMMDD STATUS' "
      "to delivered messages (earlier X-Anti-Virus headers are removed)"),
    P(POL, "AttachOriginalToAdmin", CONF_BOOL, "false", 0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP,
      SYN_NONE, "attach the original message (message/rfc822) to admin notifications; "
      "dropped, with a note, when it does not fit the 1 MiB scanner reply"),

    /* [mailgw.policy] attachment filter (reference §1.13; overridable per group) */
    P(POL, "IncludeByName", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP | CONF_SPLIT,
      SYN_NONE, "file name masks (* ? [...], case-insensitive) of attachments and archive "
      "members that get status filtered; empty = no name filter"),
    P(POL, "ExcludeByName", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP | CONF_SPLIT,
      SYN_NONE, "file name masks exempt from IncludeByName and IncludeByMime"),
    P(POL, "IncludeByMime", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP | CONF_SPLIT,
      SYN_NONE, "MIME type masks (e.g. application/x-msdownload, video/*) of parts that get "
      "status filtered; empty = no type filter"),
    P(POL, "ExcludeByMime", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_SCAND, CONF_GROUP | CONF_SPLIT,
      SYN_NONE, "MIME type masks exempt from IncludeByName and IncludeByMime"),

    /* [mailgw.policy] quarantine store (reference §1.13, §3.10; quarantine(8)) */
    P("mailgw.policy", "QuarantinePath", CONF_STR, "", 0, 0, NULL, NULL,
      OWN_QUARANTINE | OWN_QMGR | OWN_SCAND, CONF_PATH, SYN_NONE,
      "directory of the quarantine area of the store; empty = QueuePath/quarantine"),
    P("mailgw.policy", "BackupPath", CONF_STR, "", 0, 0, NULL, NULL,
      OWN_QUARANTINE | OWN_QMGR | OWN_SCAND, CONF_PATH, SYN_NONE,
      "directory of the backup area of the store; empty = QueuePath/backup"),
    P("mailgw.policy", "QuarantineMaxAge", CONF_TIME, "30", 0, 3650, "d", NULL,
      OWN_QUARANTINE | OWN_QMGR | OWN_CLI, 0, SYN_NONE,
      "mailgw quarantine expire (and the daily expiry) removes stored messages older than "
      "this from every area; 0 = keep for ever"),

    /* [mailgw.options] */
    P(OPT, "User", CONF_STR, "mailgw", 0, 0, NULL, NULL, O_ALL, 0, SYN_USER,
      "unprivileged user the daemons run as when started by root"),
    P(OPT, "AdminGroup", CONF_STR, "", 0, 0, NULL, NULL, OWN_MASTER | OWN_CLI, 0, SYN_USER,
      "group allowed to use the control socket; empty = only root and User"),
    P(OPT, "LogFilename", CONF_STR, "", 0, 0, NULL, NULL, O_ALL, CONF_PATH, SYN_NONE,
      "log file; empty = syslog (stderr in the foreground)"),
    P(OPT, "LogLevel", CONF_INT, "4", 1, 9, NULL, "1|2|3|4|9", O_ALL, 0, SYN_NONE,
      "1 errors, 2 warnings, 3 info, 4 activity (one line per message event), 9 debug"),
    P(OPT, "StatFilename", CONF_STR, "", 0, 0, NULL, NULL, OWN_MASTER | OWN_CLI, CONF_PATH,
      SYN_NONE, "file the stats command writes the counters to; empty = off"),
    P(OPT, "AVStatistics", CONF_STR, "", 0, 0, NULL, NULL, OWN_SCAND, 0, SYN_NONE,
      "file receiving one tab-separated line per scanned message; empty = off"),
    P(OPT, "ICheckerDBFilename", CONF_STR, "", 0, 0, NULL, NULL, 0, 0, SYN_NONE,
      "accepted for compatibility and unused (mailgw keeps no iChecker database)"),
    P(OPT, "HeartbeatTimeout", CONF_TIME, "30", 5, 3600, "s", NULL, OWN_MASTER, 0, SYN_NONE,
      "master kills a resident daemon that sent no heartbeat for this long"),
    P(OPT, "BlindCopyTo", CONF_LIST, NULL, 0, 0, NULL, NULL, OWN_QMGR, CONF_SPLIT, SYN_EMAIL,
      "addresses that get a copy of every received message, queued before scanning (the "
      "copy is scanned for its own recipients); empty = none"),

    /* [mailgw.tls] */
    P(TLS, "CertificateFile", CONF_STR, "", 0, 0, NULL, NULL, OWN_SMTPD | OWN_SMTP, CONF_PATH,
      SYN_NONE, "PEM certificate (chain) of this gateway; empty = no STARTTLS offered"),
    P(TLS, "KeyFile", CONF_STR, "", 0, 0, NULL, NULL, OWN_SMTPD | OWN_SMTP, CONF_PATH, SYN_NONE,
      "PEM private key; empty = the key is in CertificateFile"),
    P(TLS, "CAFile", CONF_STR, "", 0, 0, NULL, NULL, OWN_SMTP, CONF_PATH, SYN_NONE,
      "PEM CA certificates for ClientTLS=verify; empty = the system store"),
    P(TLS, "Protocols", CONF_STR, "TLSv1.2 TLSv1.3", 0, 0, NULL, NULL, OWN_SMTPD | OWN_SMTP, 0,
      SYN_TLSPROTO, "TLS versions allowed, out of TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"),
    P(TLS, "Ciphers", CONF_STR, "", 0, 0, NULL, NULL, OWN_SMTPD | OWN_SMTP, 0, SYN_NONE,
      "OpenSSL cipher list for TLS 1.2 and below; empty = OpenSSL's default"),
    P(TLS, "OfferStartTLS", CONF_BOOL, "true", 0, 0, NULL, NULL, OWN_SMTPD, 0, SYN_NONE,
      "offer STARTTLS to clients (only when CertificateFile is set)"),
    P(TLS, "ClientTLS", CONF_ENUM, "may", 0, 0, NULL, "none|may|encrypt|verify", OWN_SMTP, 0,
      SYN_NONE, "outbound TLS: none, may (opportunistic), encrypt (required), verify "
      "(required with a verified certificate)"),
};

const size_t conf_nparams = sizeof(conf_params) / sizeof(conf_params[0]);
