/*
 * report_fmt.c - numbers, durations and times for people, and the check
 * that a report reached its stream (see report_int.h).  No SQL, any thread.
 */
#include "report_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

char *fmt_flat(const char *s)
{
	char *r = xstrdup(s ? s : "");
	for (unsigned char *p = (unsigned char *)r; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return r;
}

void fmt_bytes(long long n, char out[32])
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, 32, "%lld B", n);
	else
		snprintf(out, 32, "%.1f %s", v, unit[u]);
}

void fmt_dur(double s, char out[32])
{
	if (!(s >= 0) || s > 1e10) {
		snprintf(out, 32, "?");
		return;
	}
	long long t = llround(s);
	if (t >= 86400)
		snprintf(out, 32, "%lldd%02lldh%02lldm", t / 86400, t % 86400 / 3600, t % 3600 / 60);
	else if (t >= 3600)
		snprintf(out, 32, "%lldh%02lldm", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(out, 32, "%lldm%02llds", t / 60, t % 60);
	else
		snprintf(out, 32, "%llds", t);
}

void fmt_time(double t, char out[32])
{
	if (t > 0)
		iso8601_utc(t, out);
	else
		snprintf(out, 32, "-");
}

void fmt_rate(double bps, char out[32])
{
	char b[32];
	fmt_bytes(llround(bps), b);
	b[28] = '\0';
	snprintf(out, 32, "%.28s/s", b);
}

bool fmt_write_failed(FILE *out, char **err)
{
	if (fflush(out) != 0 || ferror(out)) {
		if (err && !*err)
			*err = xasprintf("cannot write report: %s", strerror(errno ? errno : EIO));
		return true;
	}
	return false;
}
