/* cmd_check.c - placeholder until implemented (see issues). */
#include "cli.h"
#include "zmb.h"

int cmd_check(struct cli *cli)
{
	(void)cli;
	fprintf(stderr, "zmbatch: 'check' is not implemented yet\n");
	return EXIT_SOFTWARE;
}
