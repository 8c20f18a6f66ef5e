/*
 * stage_out.c - what every stage type shares: its output lines (see
 * stage.h).  Below the types; the registry (stage.c) is above them.
 */
#include "stage.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stage_out(struct stage_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *line = xvasprintf(fmt, ap);
	va_end(ap);
	if (!ctx->quiet) {
		fputs(line, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	buf_adds(&ctx->out, line);
	buf_adds(&ctx->out, "\n");
	free(line);
}

void stage_out_text(struct stage_ctx *ctx, const char *text)
{
	for (const char *p = text ? text : ""; *p;) {
		size_t len = strcspn(p, "\n");
		stage_out(ctx, "%.*s", (int)len, p);
		p += len + (p[len] == '\n');
	}
}
