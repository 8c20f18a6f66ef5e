/*
 * cmd_convert.c - `zmbatch convert ZMZTOZMIG_CONF`: print the equivalent
 * native job file on stdout.  Passwords are never printed: each inline
 * password becomes an admin_password_file suggestion with a comment.
 * Warnings (unknown keys, readable password file) go to stderr, also when
 * an error stops the conversion (then after every error).
 */
#include "cli.h"
#include "job.h"
#include "zmb.h"

#include <stdlib.h>

int cmd_convert(struct cli *cli)
{
	struct job job;
	char *err = NULL;

	if (cli->nargs != 1) {
		fprintf(stderr, "zmbatch: convert needs exactly one argument: the zmztozmig.conf file\n"
				"usage: zmbatch convert ZMZTOZMIG_CONF > job.cfg\n");
		return EXIT_USAGE;
	}
	if (conf_load(cli->args[0], false, &job, &err)) {
		cli_print_error(err ? err : "configuration error");
		free(err);
		return EXIT_CONFIG;
	}
	for (size_t i = 0; i < job.warnings.n; i++)
		fprintf(stderr, "zmbatch: warning: %s\n", job.warnings.v[i]);
	conf_write_native(&job, stdout);
	int rc = fflush(stdout) == 0 ? EXIT_OK_ : EXIT_SOFTWARE;
	job_release(&job);
	return rc;
}
