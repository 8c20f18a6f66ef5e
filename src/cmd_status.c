/* cmd_status.c - placeholder until implemented (see issues). */
#include "cli.h"
#include "zmb.h"

int cmd_status(struct cli *cli)
{
	(void)cli;
	fprintf(stderr, "zmbatch: 'status' is not implemented yet\n");
	return EXIT_SOFTWARE;
}
