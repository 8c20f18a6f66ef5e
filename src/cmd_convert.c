/* cmd_convert.c - placeholder until implemented. */
#include "cli.h"
#include "zmb.h"

int cmd_convert(struct cli *cli)
{
	(void)cli;
	fprintf(stderr, "zmbatch: 'convert' is not implemented yet\n");
	return EXIT_SOFTWARE;
}
