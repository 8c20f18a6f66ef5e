/* cmd_run.c - placeholder until implemented. */
#include "cli.h"
#include "zmb.h"

int cmd_run(struct cli *cli)
{
	(void)cli;
	fprintf(stderr, "zmbatch: 'run' is not implemented yet\n");
	return EXIT_SOFTWARE;
}
