/*
 * policy_builtin - the shipped templates (conf/templates/) compiled into
 * the program: used when a template parameter is left at its default and
 * that file is not installed next to the config file.
 *
 * Interface: policy_builtin_text() (policy.h).  t/unit/policy.t checks
 * that each text equals its file in conf/templates/.
 */
#include "policy/policy.h"

#include <string.h>

static const struct {
    const char *param, *text;
} policy_builtins[] = {
    { "NotifyAdminTemplate",
      "# notify-admin - notice to the group's administrator (AdminNotifyAddress)\n"
      "# about a message with infected, suspicious, protected, corrupted, error or\n"
      "# filtered objects ([mailgw.policy] NotifyAdmin).\n"
      "# Language: mailgw-templates(5).  Lines starting with # are comments; the\n"
      "# lines before the first empty line are the notice's headers (values there\n"
      "# are made header-safe); the rest is the body.\n"
      "From: %NOTIFY_FROM%\n"
      "To: %ADMIN%\n"
      "Subject: [mailgw] %STATUS% message from <%SENDER%> (%QUEUE_ID%)\n"
      "Date: %DATE%\n"
      "Auto-Submitted: auto-generated\n"
      "MIME-Version: 1.0\n"
      "Content-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: 8bit\n"
      "\n"
      "The mail gateway %HOSTNAME% found a message with status \"%STATUS%\".\n"
      "\n"
      "  Queue ID:      %QUEUE_ID%\n"
      "  Received:      %ARRIVAL_DATE%\n"
      "  Client:        %CLIENT_NAME% [%CLIENT_IP%] (HELO %HELO%)\n"
      "  Sender:        <%SENDER%>\n"
      "  Recipients:    %RECIPIENTS%\n"
      "  From:          %FROM%\n"
      "  Subject:       %SUBJECT%\n"
      "  Message-ID:    %MESSAGE_ID%\n"
      "  Size:          %SIZE% bytes\n"
      "  Policy group:  %GROUP%\n"
      "  Virus names:   %VIRUS_NAMES%\n"
      "  Actions taken: %ACTIONS%\n"
      "  Stored in:     %QUARANTINE_ID%\n"
      "\n"
      "Objects:\n"
      "%FOREACH OBJECT%\n"
      "  - %OBJECT_NAME% (%OBJECT_TYPE%): %OBJECT_STATUS% %OBJECT_VIRUS%\n"
      "    action: %OBJECT_ACTION%\n"
      "%END%\n"
      "\n"
      "A stored copy can be listed, shown, released or deleted with\n"
      "\"mailgw quarantine\" (mailgw-quarantine(1)).\n"
      "\n"
      "-- \n"
      "%PRODUCT% at %HOSTNAME%\n" },
    { "NotifySenderTemplate",
      "# notify-sender - notice to the envelope sender of a message that was\n"
      "# blocked or changed ([mailgw.policy] NotifySender).  Never sent to the\n"
      "# null sender <>, never about a notification.\n"
      "# Language: mailgw-templates(5); the lines before the first empty line are\n"
      "# the headers.\n"
      "From: %NOTIFY_FROM%\n"
      "To: %SENDER%\n"
      "Subject: Your message to %RECIPIENTS% was not delivered as sent\n"
      "Date: %DATE%\n"
      "Auto-Submitted: auto-generated\n"
      "MIME-Version: 1.0\n"
      "Content-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: 8bit\n"
      "\n"
      "This is the mail gateway %HOSTNAME%.\n"
      "\n"
      "Your message\n"
      "\n"
      "  Subject:     %SUBJECT%\n"
      "  Message-ID:  %MESSAGE_ID%\n"
      "  Recipients:  %RECIPIENTS%\n"
      "  Date:        %ARRIVAL_DATE%\n"
      "\n"
      "contained objects that the anti-virus check classified as \"%STATUS%\"\n"
      "(%VIRUS_NAMES%).  Actions taken: %ACTIONS%.\n"
      "\n"
      "%FOREACH OBJECT%\n"
      "  - %OBJECT_NAME%: %OBJECT_STATUS% %OBJECT_VIRUS% (%OBJECT_ACTION%)\n"
      "%END%\n"
      "\n"
      "If you did not send this message, your address may have been forged and\n"
      "you can ignore this notice.  Otherwise please check your computer with\n"
      "an up-to-date anti-virus program.  Questions: %POSTMASTER%\n"
      "\n"
      "-- \n"
      "%PRODUCT% at %HOSTNAME% (reference %QUEUE_ID%)\n" },
    { "NotifyRecipientTemplate",
      "# notify-recipient - notice to a recipient of a message that was blocked\n"
      "# or changed ([mailgw.policy] NotifyRecipient); %RECIPIENT% is the\n"
      "# recipient this copy goes to.\n"
      "# Language: mailgw-templates(5); the lines before the first empty line are\n"
      "# the headers.\n"
      "From: %NOTIFY_FROM%\n"
      "To: %RECIPIENT%\n"
      "Subject: A message for you from <%SENDER%> was %ACTIONS%\n"
      "Date: %DATE%\n"
      "Auto-Submitted: auto-generated\n"
      "MIME-Version: 1.0\n"
      "Content-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: 8bit\n"
      "\n"
      "This is the mail gateway %HOSTNAME%.\n"
      "\n"
      "A message addressed to you contained objects that the anti-virus check\n"
      "classified as \"%STATUS%\" (%VIRUS_NAMES%).\n"
      "\n"
      "  From:        <%SENDER%>\n"
      "  Subject:     %SUBJECT%\n"
      "  Message-ID:  %MESSAGE_ID%\n"
      "  Received:    %ARRIVAL_DATE%\n"
      "  Actions:     %ACTIONS%\n"
      "\n"
      "%FOREACH OBJECT%\n"
      "  - %OBJECT_NAME%: %OBJECT_STATUS% %OBJECT_VIRUS% (%OBJECT_ACTION%)\n"
      "%END%\n"
      "\n"
      "If you need this message, ask your administrator (%ADMIN%) and quote\n"
      "the reference %QUEUE_ID%.\n"
      "\n"
      "-- \n"
      "%PRODUCT% at %HOSTNAME%\n" },
    { "PlaceholderTemplate",
      "# placeholder - the text that replaces a removed object (Action*=placeholder).\n"
      "# Inside %FOREACH OBJECT% the object is the one being replaced.\n"
      "# Language: mailgw-templates(5).\n"
      "The attachment that was here has been removed by the mail gateway\n"
      "%HOSTNAME%.\n"
      "\n"
      "%FOREACH OBJECT%\n"
      "  Name:    %OBJECT_NAME%\n"
      "  Type:    %OBJECT_TYPE%\n"
      "  Status:  %OBJECT_STATUS% %OBJECT_VIRUS%\n"
      "%END%\n"
      "\n"
      "Reference: %QUEUE_ID%.  Contact %ADMIN% if you need the original.\n" },
    { "DisclaimerTemplate",
      "# disclaimer - text appended to the body of delivered messages when a\n"
      "# disclaimer is configured.  Language: mailgw-templates(5).\n"
      "\n"
      "-- \n"
      "This message was checked for viruses by %PRODUCT% at %HOSTNAME%.\n" },
};

const char *policy_builtin_text(const char *param)
{
    for (size_t i = 0; i < sizeof policy_builtins / sizeof policy_builtins[0]; i++) {
        if (strcmp(policy_builtins[i].param, param) == 0)
            return policy_builtins[i].text;
    }
    return NULL;
}
