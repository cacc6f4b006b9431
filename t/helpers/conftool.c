/*
 * conftool - test driver for cli/mailgw_config.c without the mailgw
 * dispatcher: "conftool check [-c FILE]", "conftool config [...]".
 *
 * The Makefile links a helper from its own source and libmailgw.a only,
 * so the command module is compiled in here.
 */
#include "../../cli/mailgw_config.c"

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "check") == 0)
        return mailgw_cmd_check(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "config") == 0)
        return mailgw_cmd_config(argc - 1, argv + 1);
    fprintf(stderr, "usage: conftool check|config [options]\n");
    return 2;
}
