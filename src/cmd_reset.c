/* cmd_reset.c - placeholder until implemented (see issues). */
#include "cli.h"
#include "zmb.h"

int cmd_reset(struct cli *cli)
{
	(void)cli;
	fprintf(stderr, "zmbatch: 'reset' is not implemented yet\n");
	return EXIT_SOFTWARE;
}
