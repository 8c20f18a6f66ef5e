/* cmd_accounts.c - placeholder until implemented (see issues). */
#include "cli.h"
#include "zmb.h"

int cmd_accounts(struct cli *cli)
{
	(void)cli;
	fprintf(stderr, "zmbatch: 'accounts' is not implemented yet\n");
	return EXIT_SOFTWARE;
}
