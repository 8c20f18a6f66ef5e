/* cmd_report.c - placeholder until implemented (see issues). */
#include "cli.h"
#include "zmb.h"

int cmd_report(struct cli *cli)
{
	(void)cli;
	fprintf(stderr, "zmbatch: 'report' is not implemented yet\n");
	return EXIT_SOFTWARE;
}
