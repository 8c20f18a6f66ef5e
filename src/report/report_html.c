/*
 * report_html.c - `report --format html`: one self-contained HTML5 page (no
 * script, no external resource of any kind: inline <style>, inline SVG
 * charts, the system font stack), readable on a phone and printable.
 * Sections and their ids: report.h.  The numbers are the snapshot's (the
 * same definitions as text and json); the charts and tables read the named
 * queries of query_report.h, each bounded (HTML_* limits below), so the
 * page's size does not grow with the number of accounts.
 *
 * Every text that comes from the DB (account names, error texts, hosts,
 * job and stage names, error classes) goes through html_esc(), in HTML
 * text, attributes and SVG alike: a name like "<script>" renders as text.
 */
#include "report_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Bounds (report.h): rows of each list, points of each chart, characters of a text. */
#define HTML_PROBLEMS 50        /* failed / mismatched / unverifiable accounts listed */
#define HTML_SLOWEST 10
#define HTML_LARGEST 10         /* largest still to migrate */
#define HTML_RUNS 20            /* rows of the runs table */
#define HTML_BANDS 200          /* runs drawn as bands in the progress chart */
#define HTML_CLASSES 12         /* failure classes drawn (the rest summed as "other") */
#define HTML_PROV_FAILED 20
#define HTML_POINTS 60          /* buckets of the progress chart */
#define HTML_HOURS 48           /* bars of the throughput chart */
#define HTML_TEXT_MAX 400       /* bytes of one text from the DB (longer: cut, "...") */
#define HTML_OUTPUT_MAX 2000    /* bytes of a stage's output lines */

/* The chart canvas (viewBox units; the SVG scales to the page width). */
#define CW 720
#define CH 260
#define ML 70                   /* left margin: the left axis' labels */
#define MR 70                   /* right margin: the bytes axis */
#define MT 14
#define MB 42

#define C_DONE "#2e7d32"
#define C_LEFT "#1565c0"
#define C_FAIL "#c62828"
#define C_SKIP "#9e9e9e"
#define C_BAND "#e3ebf6"

struct html {
	FILE *out;
	sqlite3 *db;
	const struct snapshot *s;
	int n;                  /* rows written by the current stream */
};

/* ---- escaping ---- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static int utf8_len(const unsigned char *p)
{
	int n = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 :
		p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
	for (int k = 1; k < n; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	if ((n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) ||
	    (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))))
		return 0;   /* overlong, surrogate, beyond U+10FFFF */
	return n;
}

/*
 * s (NULL = "") escaped for HTML text and attribute values alike: & < > " '
 * as entities; control characters (but tab and newline), C1 controls and
 * the bidi overrides and isolates (U+202A-202E, U+2066-2069: a name shown
 * reversed) as spaces; a byte that is not valid UTF-8 as U+FFFD.  Cut after
 * max bytes of s, on a character, with "..." appended.
 */
static void html_esc_n(FILE *out, const char *s, size_t max)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
		if (n >= max) {
			fputs("...", out);
			return;
		}
		int len = utf8_len(p);
		if (len == 0) {
			fputs("&#xFFFD;", out);
			p++;
			n++;
			continue;
		}
		if (len > 1) {
			bool blank = (p[0] == 0xc2 && p[1] < 0xa0) ||
				     (p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
				     (p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9);
			if (blank)
				fputc(' ', out);
			else
				fwrite(p, 1, (size_t)len, out);
			p += len;
			n += (size_t)len;
			continue;
		}
		switch (*p) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		default:
			if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f)
				fputc(' ', out);
			else
				fputc(*p, out);
		}
		p++;
		n++;
	}
}

static void html_esc(FILE *out, const char *s)
{
	html_esc_n(out, s, HTML_TEXT_MAX);
}

/* A table cell of one account: "source -> target" when they differ. */
static void td_account(FILE *out, const char *account, const char *target)
{
	fputs("<td class=\"acct\">", out);
	html_esc(out, account);
	if (target && account && strcmp(account, target) != 0) {
		fputs(" <span class=\"dim\">&rarr; ", out);
		html_esc(out, target);
		fputs("</span>", out);
	}
	fputs("</td>", out);
}

/* <data value="N">people's form</data> */
static void data_bytes(FILE *out, long long n)
{
	char b[32];
	fmt_bytes(n, b);
	fprintf(out, "<data value=\"%lld\">%s</data>", n, b);
}

static void data_int(FILE *out, long long n)
{
	fprintf(out, "<data value=\"%lld\">%lld</data>", n, n);
}

/* ---- head and summary ---- */

static const char *const CSS =
	":root{color-scheme:light}"
	"*{box-sizing:border-box}"
	"body{margin:0;font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\","
	"Arial,\"Noto Sans\",\"Liberation Sans\",sans-serif;color:#1b1f24;background:#f5f6f8;"
	"line-height:1.4;font-size:15px}"
	"header{background:#24324a;color:#fff;padding:14px 18px}"
	"header h1{margin:0;font-size:1.3em;font-weight:600;overflow-wrap:anywhere}"
	"header p{margin:4px 0 0;opacity:.85;font-size:.9em}"
	"main{max-width:1100px;margin:0 auto;padding:10px}"
	"section{background:#fff;border:1px solid #dde1e6;border-radius:8px;margin:12px 0;"
	"padding:12px 16px}"
	"h2{font-size:1.1em;margin:0 0 10px;color:#24324a}"
	"h3{font-size:1em;margin:14px 0 6px}"
	".kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(128px,1fr));gap:8px}"
	".kpi{border:1px solid #e3e6ea;border-radius:6px;padding:8px 10px;background:#fafbfc}"
	".kpi b{display:block;font-size:1.35em;font-variant-numeric:tabular-nums}"
	".kpi span{color:#57606a;font-size:.85em}"
	".kpi.done b{color:" C_DONE "}.kpi.failed b{color:" C_FAIL "}.kpi.left b{color:" C_LEFT "}"
	".bar{height:14px;background:#e6e9ed;border-radius:7px;overflow:hidden;margin:10px 0 4px}"
	".bar div{height:100%;background:" C_DONE "}"
	"dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:10px 0 0}"
	"dl.facts dt{color:#57606a}dl.facts dd{margin:0;overflow-wrap:anywhere}"
	".scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:6px 0}"
	"table{border-collapse:collapse;font-size:.9em;min-width:100%}"
	"th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef1;vertical-align:top}"
	"th{background:#f1f3f5;font-weight:600;white-space:nowrap}"
	"td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
	"td.acct{overflow-wrap:anywhere;min-width:15em}"
	"td.err{overflow-wrap:anywhere;min-width:16em;white-space:pre-wrap}"
	"td.todo{min-width:16em}"
	".dim{color:#6a737d}.bad{color:" C_FAIL "}"
	".st-failed{color:" C_FAIL ";font-weight:600}.st-done{color:" C_DONE "}"
	"code{font-family:ui-monospace,\"SFMono-Regular\",Menlo,Consolas,\"Liberation Mono\","
	"monospace;font-size:.92em;background:#f1f3f5;padding:0 3px;border-radius:3px}"
	"figure{margin:8px 0;break-inside:avoid;page-break-inside:avoid}"
	"figure svg{width:100%;height:auto;display:block;max-width:900px}"
	"figcaption{font-size:.88em;color:#444c56;margin-top:4px}"
	"svg text{font-family:inherit;font-size:11px;fill:#444c56}"
	"details{margin:4px 0}summary{cursor:pointer;color:#24324a;font-size:.9em}"
	".legend span{display:inline-block;margin-right:14px;font-size:.85em}"
	".legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:-1px}"
	"footer{color:#6a737d;font-size:.8em;text-align:center;padding:10px 10px 24px}"
	"@media (max-width:600px){body{font-size:14px}main{padding:4px}section{padding:10px;"
	"border-radius:0;margin:8px 0}dl.facts{grid-template-columns:1fr}dl.facts dt{margin-top:4px}}"
	"@media print{body{background:#fff;font-size:11pt}header{background:#fff;color:#000;"
	"border-bottom:2px solid #000;padding:0 0 6px}section{border:none;border-top:1px solid #999;"
	"border-radius:0;padding:6px 0;break-inside:auto}.scroll{overflow:visible}"
	"details>*{display:block}h2{break-after:avoid;page-break-after:avoid}"
	"figure,tr{break-inside:avoid;page-break-inside:avoid}}";

static void html_head(struct html *h)
{
	FILE *out = h->out;
	char t[32];
	fmt_time(h->s->now, t);
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      "<meta name=\"generator\" content=\"zmbatch " ZMB_VERSION "\">\n<title>zmbatch report: ", out);
	html_esc(out, h->s->job);
	fprintf(out, "</title>\n<style>%s</style>\n</head>\n<body>\n<header><h1>zmbatch report: ", CSS);
	html_esc(out, h->s->job);
	fprintf(out, "</h1><p>generated <time datetime=\"%s\">%s</time></p></header>\n<main>\n", t, t);
}

static void kpi(FILE *out, const char *id, const char *cls, long long n, const char *label)
{
	fprintf(out, "<div class=\"kpi %s\" id=\"%s\"><b>", cls, id);
	data_int(out, n);
	fprintf(out, "</b><span>%s</span></div>\n", label);
}

/* The ETA as the text report words it (report.h: remaining / throughput). */
static void html_eta(FILE *out, const struct snapshot *s, double rate)
{
	char e[32];
	if (s->remaining <= 0 && snapshot_left(s) == 0)
		fputs("<span id=\"eta\">nothing left to migrate</span>", out);
	else if (rate <= 0)
		fputs("<span id=\"eta\">unknown (no throughput measured yet)</span>", out);
	else if (s->remaining <= 0)   /* accounts left, none with a known size */
		fputs("<span id=\"eta\">unknown (the sizes left are unknown)</span>", out);
	else {
		double sec = (double)s->remaining / rate;
		fmt_dur(sec, e);
		fprintf(out, "<span id=\"eta\"><data value=\"%.0f\">%s</data></span> "
			"<span class=\"dim\">(remaining bytes / throughput)</span>", sec, e);
	}
}

static void html_last_run(FILE *out, const struct snapshot *s)
{
	const struct qr_run *l = &s->last.row;
	char t1[32], t2[32], d[32];
	if (!l->present) {
		fputs("<span id=\"last-run\">none yet</span>", out);
		return;
	}
	fmt_time(l->started_at, t1);
	fmt_dur(s->last.duration, d);
	fprintf(out, "<span id=\"last-run\" data-status=\"%s\">#%lld <code>", s->last.status, l->id);
	html_esc(out, l->command);
	fprintf(out, "</code> started %s on ", t1);
	html_esc(out, l->host);
	fputs(": ", out);
	if (!strcmp(s->last.status, "exited")) {
		fmt_time(l->ended_at, t2);
		if (l->has_exit)
			fprintf(out, "<b>exit %d</b> at %s after %s", l->exit_status, t2, d);
		else
			fprintf(out, "ended at %s after %s", t2, d);
	} else if (!strcmp(s->last.status, "running")) {
		fprintf(out, "<b>running</b> for %s", d);
	} else {
		fputs("<b>died</b> (no end recorded; the next run recovers its accounts)", out);
	}
	fputs("</span>", out);
}

static void html_summary(struct html *h)
{
	FILE *out = h->out;
	const struct snapshot *s = h->s;
	long long flight = s->counts[ACCT_EXPORTING] + s->counts[ACCT_EXPORTED] + s->counts[ACCT_IMPORTING];
	double rate = snapshot_avg_rate(s);
	double pct = s->bytes_total > 0 ? 100.0 * (double)s->bytes_done / (double)s->bytes_total : 0;
	char r[32], d[32], t[32];

	fputs("<section id=\"summary\">\n<h2>At a glance</h2>\n<div class=\"kpis\">\n", out);
	kpi(out, "k-accounts", "", s->accounts, "accounts");
	kpi(out, "k-done", "done", s->counts[ACCT_DONE], "done");
	kpi(out, "k-failed", "failed", s->counts[ACCT_FAILED], "failed");
	kpi(out, "k-pending", "left", s->counts[ACCT_PENDING], "pending");
	kpi(out, "k-flight", "left", flight, "in flight");
	kpi(out, "k-skipped", "", s->counts[ACCT_SKIPPED], "skipped");
	kpi(out, "k-verified", "done", s->verify[QR_VERIFY_OK], "verified ok");
	kpi(out, "k-mismatch", "failed", s->verify[QR_VERIFY_MISMATCH], "mismatch");
	kpi(out, "k-unverifiable", "", s->verify[QR_VERIFY_UNVERIFIABLE], "unverifiable");
	fputs("</div>\n", out);
	fprintf(out, "<div class=\"bar\" role=\"img\" aria-label=\"%.1f%% of the planned bytes done\">"
		"<div style=\"width:%.1f%%\"></div></div>\n", pct, pct);
	fputs("<dl class=\"facts\">\n<dt>bytes</dt><dd><span id=\"bytes-done\">", out);
	data_bytes(out, s->bytes_done);
	fputs("</span> of <span id=\"bytes-total\">", out);
	data_bytes(out, s->bytes_total);
	fprintf(out, "</span> (%.1f%%), <span id=\"bytes-remaining\">", pct);
	data_bytes(out, s->remaining);
	fputs("</span> remaining</dd>\n", out);
	fmt_rate(rate, r);
	fmt_dur(s->run_seconds, d);
	fprintf(out, "<dt>throughput</dt><dd><span id=\"rate\"><data value=\"%.0f\">%s</data></span> "
		"<span class=\"dim\">(bytes done over %s of run time in %lld run%s)</span></dd>\n",
		rate, r, d, s->runs, s->runs == 1 ? "" : "s");
	fputs("<dt>ETA</dt><dd>", out);
	html_eta(out, s, rate);
	fputs("</dd>\n<dt>last run</dt><dd>", out);
	html_last_run(out, s);
	fputs("</dd>\n", out);
	if (s->last_success_at > 0) {
		fmt_time(s->last_success_at, t);
		fprintf(out, "<dt>last success</dt><dd>%s</dd>\n", t);
	}
	fprintf(out, "<dt>retries</dt><dd>%lld, token refreshes %lld</dd>\n", s->retries, s->refreshes);
	if (s->warned)
		fprintf(out, "<dt>warnings</dt><dd>%lld done with import warnings "
			"(<code>zmbatch accounts --history ACCOUNT</code>)</dd>\n", s->warned);
	fputs("</dl>\n<details><summary>accounts by state</summary><div class=\"scroll\"><table>"
	      "<tr><th>state</th><th class=\"n\">accounts</th></tr>\n", out);
	for (int i = 0; i < ACCT_NSTATES; i++) {
		const char *st = acct_state_name((enum acct_state)i);
		fprintf(out, "<tr id=\"count-%s\"><td>%s</td><td class=\"n\">", st, st);
		data_int(out, s->counts[i]);
		fputs("</td></tr>\n", out);
	}
	fputs("</table></div></details>\n</section>\n", out);
}

/* ---- charts ---- */

/* <figure><svg><title>: open one chart of height hgt; id names it. */
static void svg_open(FILE *out, const char *id, int hgt, const char *title)
{
	fprintf(out, "<figure id=\"fig-%s\"><svg viewBox=\"0 0 %d %d\" "
		"role=\"img\" aria-labelledby=\"t-%s\"><title id=\"t-%s\">", id, CW, hgt, id, id);
	html_esc(out, title);
	fputs("</title>\n", out);
}

/* Frame: the plot area's axes and a few horizontal grid lines with their labels. */
static void svg_axes(FILE *out, int hgt, double ymax, bool bytes, bool right, const char *colour)
{
	int x = right ? CW - MR : ML, y1 = hgt - MB;
	for (int i = 0; i <= 4; i++) {
		double v = ymax * i / 4;
		double y = y1 - (double)(y1 - MT) * i / 4;
		char b[32];
		if (bytes)
			fmt_bytes(llround(v), b);
		else
			snprintf(b, sizeof b, "%lld", llround(v));
		if (!right)
			fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e1e4e8\"/>\n",
				ML, y, CW - MR, y);
		fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"%s\" fill=\"%s\" style=\"fill:%s\">%s</text>\n",
			right ? x + 6 : x - 6, y + 4, right ? "start" : "end", colour, colour, b);
	}
	fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#8c959f\"/>\n", ML, y1, CW - MR, y1);
}

/*
 * The top of an axis of four steps, >= v: for counts each step 1, 2 or 5
 * times a power of 10 (whole); for bytes a power of 2 (256 KiB, 512 KiB, ...).
 */
static double axis_max(double v, bool bytes)
{
	double q = (v > 0 ? v : 1) / 4, step = 1;
	if (bytes) {
		while (step < q)
			step *= 2;
		return 4 * step;
	}
	double p = 1;
	while (q / p >= 10)
		p *= 10;
	double f = q / p;
	step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
	return 4 * step;
}

struct progress {
	double x0, x1;                  /* the time axis */
	double width;                   /* seconds per bucket */
	long long acc[HTML_POINTS], bytes[HTML_POINTS];
	struct { double a, b; long long id; } band[HTML_BANDS];
	int nbands;
	double now;
	bool running;
};

static void progress_bucket(void *arg, int b, long long accounts, long long bytes)
{
	struct progress *p = arg;
	if (b >= 0 && b < HTML_POINTS) {
		p->acc[b] += accounts;
		p->bytes[b] += bytes;
	}
}

static void progress_run(void *arg, const struct qr_run *r)
{
	struct progress *p = arg;
	if (p->nbands >= HTML_BANDS || r->started_at <= 0)
		return;
	double end = r->ended_at > 0 ? r->ended_at : r->started_at;
	if (r->ended_at <= 0 && p->running && p->nbands == 0)
		end = p->now;           /* the newest run, in progress */
	p->band[p->nbands].a = r->started_at;
	p->band[p->nbands].b = end;
	p->band[p->nbands].id = r->id;
	p->nbands++;
}

static double px(const struct progress *p, double t)
{
	double f = p->x1 > p->x0 ? (t - p->x0) / (p->x1 - p->x0) : 0;
	if (f < 0)
		f = 0;
	if (f > 1)
		f = 1;
	return ML + f * (CW - ML - MR);
}

/* x-axis time labels: start, middle, end. */
static void time_labels(FILE *out, int hgt, double x0, double x1)
{
	for (int i = 0; i <= 2; i++) {
		char t[32];
		double tt = x0 + (x1 - x0) * i / 2;
		fmt_time(tt, t);
		if (strlen(t) >= 19) {
			t[10] = ' ';
			t[x1 - x0 < 600 ? 19 : 16] = '\0';   /* "2026-12-04 04:10[:05]" */
		}
		fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">%s</text>\n",
			ML + (double)(CW - ML - MR) * i / 2, hgt - MB + 16, i == 0 ? "start" : i == 2 ? "end" : "middle",
			t);
	}
}

static enum zmb_rc html_progress(struct html *h, char **err)
{
	FILE *out = h->out;
	const struct snapshot *s = h->s;
	struct qr_done_span span;
	struct progress *p = xcalloc(1, sizeof *p);
	enum zmb_rc rc;

	fputs("<section id=\"progress\">\n<h2>Progress over time</h2>\n", out);
	if ((rc = qr_done_span(h->db, &span, err)) != ZMB_OK)
		goto out;
	p->now = s->now;
	p->running = snapshot_running(s);
	if ((rc = qr_runs(h->db, HTML_BANDS, progress_run, p, err)) != ZMB_OK)
		goto out;
	if (span.n <= 0) {
		fputs("<p id=\"progress-none\">No account done yet.</p>\n", out);
		goto done;
	}
	p->x0 = span.first;
	p->x1 = span.last;
	for (int i = 0; i < p->nbands; i++) {     /* every run drawn, those that finished nothing too */
		if (p->band[i].a < p->x0)
			p->x0 = p->band[i].a;
		if (p->band[i].b > p->x1)
			p->x1 = p->band[i].b;
	}
	if (p->x1 - p->x0 < 60)
		p->x1 = p->x0 + 60;
	/* buckets cover [first finish, last finish]; the axis may start earlier (a run's band) */
	p->width = (span.last - span.first) / HTML_POINTS;
	if (p->width <= 0)
		p->width = 1;
	if ((rc = qr_done_buckets(h->db, span.first, p->width, HTML_POINTS, progress_bucket, p, err)) != ZMB_OK)
		goto out;
	long long ta = 0, tb = 0;
	for (int i = 0; i < HTML_POINTS; i++) {
		ta += p->acc[i];
		tb += p->bytes[i];
	}
	double amax = axis_max((double)ta, false), bmax = axis_max((double)tb, true);
	char t0[32], t1[32], bt[32];
	fmt_time(span.first, t0);
	fmt_time(span.last, t1);
	fmt_bytes(tb, bt);
	char *title = xasprintf("Accounts and bytes done over time: %lld accounts, %s, from %s to %s",
				ta, bt, t0, t1);
	svg_open(out, "progress", CH, title);
	free(title);
	int y1 = CH - MB;
	for (int i = 0; i < p->nbands; i++) {
		if (p->band[i].b < p->x0 || p->band[i].a > p->x1)
			continue;
		double a = px(p, p->band[i].a), b = px(p, p->band[i].b);
		char ta0[32], tb0[32];
		fmt_time(p->band[i].a, ta0);
		fmt_time(p->band[i].b, tb0);
		fprintf(out, "<rect class=\"run\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"" C_BAND
			"\"><title>run #%lld: %s to %s</title></rect>\n", a, MT, b - a < 1 ? 1 : b - a, y1 - MT,
			p->band[i].id, ta0, tb0);
	}
	svg_axes(out, CH, amax, false, false, C_LEFT);
	svg_axes(out, CH, bmax, true, true, C_DONE);
	time_labels(out, CH, p->x0, p->x1);
	/* the two cumulative lines: a step at the end of each bucket */
	for (int line = 0; line < 2; line++) {
		long long *v = line ? p->bytes : p->acc;
		double max = line ? bmax : amax, cum = 0;
		fprintf(out, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%.1f,%d",
			line ? "bytes" : "accounts", line ? C_DONE : C_LEFT, px(p, span.first), y1);
		for (int i = 0; i < HTML_POINTS; i++) {
			cum += (double)v[i];
			fprintf(out, " %.1f,%.1f", px(p, span.first + p->width * (i + 1)),
				y1 - (double)(y1 - MT) * cum / max);
		}
		fprintf(out, " %.1f,%.1f", px(p, p->x1), y1 - (double)(y1 - MT) * cum / max);
		fprintf(out, "\"><title>%s done: %s</title></polyline>\n", line ? "bytes" : "accounts",
			line ? bt : "");
	}
	fputs("</svg>\n<figcaption><span class=\"legend\"><span><i style=\"background:" C_LEFT
	      "\"></i>accounts done (left axis)</span><span><i style=\"background:" C_DONE
	      "\"></i>bytes done (right axis)</span><span><i style=\"background:" C_BAND
	      "\"></i>runs</span></span><br>", out);
	fprintf(out, "<span id=\"progress-total\">");
	data_int(out, ta);
	fputs(" accounts, ", out);
	data_bytes(out, tb);
	fprintf(out, "</span> done between %s and %s", t0, t1);
	if (span.untimed)
		fprintf(out, "; %lld done account(s) without a finish time are not drawn", span.untimed);
	fputs(".</figcaption></figure>\n<details><summary>data</summary><div class=\"scroll\"><table>"
	      "<tr><th>until</th><th class=\"n\">accounts done</th><th class=\"n\">bytes done</th></tr>\n", out);
	long long ca = 0, cb = 0;
	for (int i = 0; i < HTML_POINTS; i++) {
		if (!p->acc[i])
			continue;
		ca += p->acc[i];
		cb += p->bytes[i];
		char t[32];
		fmt_time(span.first + p->width * (i + 1), t);
		fprintf(out, "<tr><td>%s</td><td class=\"n\">%lld</td><td class=\"n\">", t, ca);
		data_bytes(out, cb);
		fputs("</td></tr>\n", out);
	}
	fputs("</table></div></details>\n", out);
done:
	fputs("</section>\n", out);
	rc = ZMB_OK;
out:
	free(p);
	return rc;
}

struct hours { long long acc[HTML_HOURS], bytes[HTML_HOURS]; };

static void hour_bucket(void *arg, int b, long long accounts, long long bytes)
{
	struct hours *p = arg;
	if (b >= 0 && b < HTML_HOURS) {
		p->acc[b] += accounts;
		p->bytes[b] += bytes;
	}
}

static enum zmb_rc html_throughput(struct html *h, char **err)
{
	FILE *out = h->out;
	struct qr_done_span span;
	struct hours p;
	enum zmb_rc rc;
	memset(&p, 0, sizeof p);

	fputs("<section id=\"throughput\">\n<h2>Throughput per hour</h2>\n", out);
	if ((rc = qr_done_span(h->db, &span, err)) != ZMB_OK)
		return rc;
	if (span.n <= 0) {
		fputs("<p>No account done yet.</p>\n</section>\n", out);
		return ZMB_OK;
	}
	/* the HTML_HOURS clock hours up to the one of the last finish */
	double last_hour = floor(span.last / 3600) * 3600;
	double origin = last_hour - 3600.0 * (HTML_HOURS - 1);
	if (span.first > origin)
		origin = floor(span.first / 3600) * 3600;
	int n = (int)llround((last_hour - origin) / 3600) + 1;
	if ((rc = qr_done_buckets(h->db, origin, 3600, n, hour_bucket, &p, err)) != ZMB_OK)
		return rc;
	long long peak = 0, total = 0;
	for (int i = 0; i < n; i++) {
		if (p.bytes[i] > peak)
			peak = p.bytes[i];
		total += p.bytes[i];
	}
	double avg = snapshot_avg_rate(h->s) * 3600;
	double ymax = axis_max((double)peak, true);
	char pk[32], tt[32], av[32];
	fmt_bytes(peak, pk);
	fmt_bytes(total, tt);
	fmt_bytes(llround(avg), av);
	char *title = xasprintf("Bytes done per hour over %d hour(s): %s in all, peak %s", n, tt, pk);
	svg_open(out, "throughput", CH, title);
	free(title);
	svg_axes(out, CH, ymax, true, false, "#444c56");
	int y1 = CH - MB;
	double slot = (double)(CW - ML - MR) / n;
	for (int i = 0; i < n; i++) {
		if (!p.bytes[i] && !p.acc[i])
			continue;
		double hgt = (double)(y1 - MT) * (double)p.bytes[i] / ymax;
		char t[32], b[32];
		fmt_time(origin + 3600.0 * i, t);
		fmt_bytes(p.bytes[i], b);
		fprintf(out, "<rect class=\"hour\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"" C_DONE
			"\"><title>hour from %s: %s, %lld account(s)</title></rect>\n", ML + slot * i + slot * 0.1,
			y1 - hgt, slot * 0.8, hgt < 1 ? 1 : hgt, t, b, p.acc[i]);
	}
	if (avg > 0 && avg <= ymax) {   /* a short run's average can be far above any hour's */
		double y = y1 - (double)(y1 - MT) * avg / ymax;
		fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"" C_LEFT
			"\" stroke-dasharray=\"5,4\"><title>average over run time: %s per hour</title></line>\n",
			ML, y, CW - MR, y, av);
	}
	time_labels(out, CH, origin, origin + 3600.0 * n);
	fprintf(out, "</svg>\n<figcaption>Bytes of the accounts that reached done in each clock hour "
		"(UTC); <span id=\"throughput-total\">");
	data_bytes(out, total);
	fprintf(out, "</span> over %d hour(s), peak %s/h; %s the report's throughput "
		"(bytes done / run time) as %s/h.</figcaption></figure>\n", n, pk,
		avg > 0 && avg <= ymax ? "dashed:" : "not drawn (above every hour's: short runs):", av);
	fputs("<details><summary>data</summary><div class=\"scroll\"><table><tr><th>hour (UTC)</th>"
	      "<th class=\"n\">accounts</th><th class=\"n\">bytes</th></tr>\n", out);
	for (int i = 0; i < n; i++) {
		if (!p.acc[i])
			continue;
		char t[32];
		fmt_time(origin + 3600.0 * i, t);
		fprintf(out, "<tr><td>%s</td><td class=\"n\">%lld</td><td class=\"n\">", t, p.acc[i]);
		data_bytes(out, p.bytes[i]);
		fputs("</td></tr>\n", out);
	}
	fputs("</table></div></details>\n</section>\n", out);
	return ZMB_OK;
}

/* ---- failures ---- */

struct classes {
	char name[HTML_CLASSES][100];
	long long n[HTML_CLASSES];
	int count;
	long long other;        /* failed accounts of the classes past HTML_CLASSES */
	long long all;          /* classes, drawn or not */
};

static void class_row(void *arg, const char *error_class, long long n)
{
	struct classes *c = arg;
	c->all++;
	if (c->count >= HTML_CLASSES) {
		c->other += n;
		return;
	}
	const char *cls = error_class && *error_class ? error_class : "unknown";
	size_t len = strlen(cls), cap = sizeof c->name[0] - 4;
	if (len > cap) {   /* cut on a UTF-8 character, marked */
		len = cap;
		while (len > 0 && ((unsigned char)cls[len] & 0xc0) == 0x80)
			len--;
		snprintf(c->name[c->count], sizeof c->name[0], "%.*s...", (int)len, cls);
	} else {
		snprintf(c->name[c->count], sizeof c->name[0], "%s", cls);
	}
	c->n[c->count++] = n;
}

/* What a person can do about a failed account of this class (commands: main.c). */
static const char *advice_class(const char *cls)
{
	static const struct { const char *cls, *todo; } tab[] = {
		{ "auth", "Check the admin credentials and the account on that server "
			  "(<code>zmbatch check</code>), then <code>zmbatch reset ACCOUNT</code> and run again." },
		{ "auth-expired", "A token expired mid-transfer: <code>zmbatch run --retry-failed</code>." },
		{ "permanent", "Read the error (e.g. no such account on the target), fix its cause, then "
			       "<code>zmbatch reset ACCOUNT</code> and run again." },
		{ "tls", "Fix the certificate trust (<code>--ca-file PEM</code>), then "
			 "<code>zmbatch run --retry-failed</code>." },
		{ "config", "Fix the job file (<code>zmbatch check</code>), then "
			    "<code>zmbatch run --retry-failed</code>." },
		{ "disk-space", "Free space in the spool and working directories, then "
				"<code>zmbatch run --retry-failed</code>." },
		{ "maintenance", "The source account is in maintenance; when it is active again: "
				 "<code>zmbatch run --retry-failed</code>." },
		{ "internal", "A bug: keep <code>zmbatch accounts --history ACCOUNT</code> for the report, "
			      "then <code>zmbatch reset ACCOUNT</code> and run again." },
	};
	static const char *const transient[] = { "temporary", "throttled", "connect", "io", "timeout",
						  "state", "canceled" };
	for (size_t i = 0; cls && i < sizeof tab / sizeof *tab; i++)
		if (!strcmp(cls, tab[i].cls))
			return tab[i].todo;
	for (size_t i = 0; cls && i < sizeof transient / sizeof *transient; i++)
		if (!strcmp(cls, transient[i]))
			return "Transient (the server or the network): <code>zmbatch run --retry-failed</code>.";
	return "See <code>zmbatch accounts --history ACCOUNT</code>; when the cause is fixed, "
	       "<code>zmbatch reset ACCOUNT</code> and run again.";
}

static void problem_row(void *arg, const struct qr_problem *r)
{
	struct html *h = arg;
	FILE *out = h->out;
	bool failed = r->state && !strcmp(r->state, "failed");
	fputs("<tr class=\"problem\">", out);
	td_account(out, r->account, r->target);
	fputs("<td class=\"", out);
	fputs(failed ? "st-failed" : "", out);
	fputs("\">", out);
	html_esc(out, r->state);
	fprintf(out, "</td><td class=\"n\">%lld</td><td>", r->attempts);
	if (failed)
		html_esc(out, r->error_class && *r->error_class ? r->error_class : "unknown");
	else {
		fputs("verify: ", out);
		html_esc(out, r->verify);
	}
	fputs("</td><td class=\"err\">", out);
	const char *why = failed ? r->error : r->verify_detail;
	if (why && *why)
		html_esc(out, why);
	else
		fputs("<span class=\"dim\">(no reason recorded)</span>", out);
	fputs("</td><td class=\"todo\">", out);
	if (failed)
		fputs(advice_class(r->error_class), out);
	else if (r->verify && !strcmp(r->verify, "mismatch"))
		fputs("Check again with <code>zmbatch verify ACCOUNT</code>; <code>zmbatch verify "
		      "--reset-mismatched</code> puts it back to pending and the next "
		      "<code>zmbatch run</code> migrates it again.", out);
	else
		fputs("The figures could not be compared: <code>zmbatch verify ACCOUNT</code> when both "
		      "servers answer.", out);
	fputs("</td></tr>\n", out);
	h->n++;
}

static enum zmb_rc html_failures(struct html *h, char **err)
{
	FILE *out = h->out;
	const struct snapshot *s = h->s;
	struct classes c;
	enum zmb_rc rc;
	memset(&c, 0, sizeof c);

	fputs("<section id=\"failures\">\n<h2>Failures and mismatches</h2>\n", out);
	fprintf(out, "<p><span id=\"failed-count\">");
	data_int(out, s->counts[ACCT_FAILED]);
	fprintf(out, "</span> failed, %lld mismatched, %lld unverifiable.</p>\n",
		s->verify[QR_VERIFY_MISMATCH], s->verify[QR_VERIFY_UNVERIFIABLE]);
	if (s->counts[ACCT_FAILED] > 0) {
		if ((rc = qr_failure_classes(h->db, class_row, &c, err)) != ZMB_OK)
			return rc;
		int rows = c.count + (c.other > 0), hgt = MT + 26 * rows + 30;
		long long max = 0;
		for (int i = 0; i < c.count; i++)
			if (c.n[i] > max)
				max = c.n[i];
		if (c.other > max)
			max = c.other;
		char *title = c.other > 0 ?
			xasprintf("Failed accounts by error class: %lld in %lld classes (the %d largest "
				  "drawn, the rest as other)", s->counts[ACCT_FAILED], c.all, c.count) :
			xasprintf("Failed accounts by error class: %lld in %lld class(es)",
				  s->counts[ACCT_FAILED], c.all);
		svg_open(out, "failures", hgt, title);
		free(title);
		int x0 = 150, xw = CW - x0 - 80;
		for (int i = 0; i < rows; i++) {
			long long n = i < c.count ? c.n[i] : c.other;
			const char *name = i < c.count ? c.name[i] : "other";
			double w = max > 0 ? (double)xw * (double)n / (double)max : 0;
			int y = MT + 26 * i;
			fputs("<g class=\"class\"><title>", out);
			html_esc(out, name);
			fprintf(out, ": %lld failed</title><text x=\"%d\" y=\"%d\" text-anchor=\"end\">", n, x0 - 8,
				y + 14);
			html_esc_n(out, name, 22);
			fprintf(out, "</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"18\" fill=\"" C_FAIL
				"\"/><text x=\"%.1f\" y=\"%d\">%lld</text></g>\n", x0, y, w < 1 ? 1 : w, x0 + w + 6,
				y + 14, n);
		}
		fprintf(out, "</svg>\n<figcaption>Failed accounts by error class (%lld in all).</figcaption>"
			"</figure>\n", s->counts[ACCT_FAILED]);
	}
	long long total = 0;
	h->n = 0;
	fputs("<div class=\"scroll\"><table id=\"problems\"><tr><th>account</th><th>state</th>"
	      "<th class=\"n\">attempts</th><th>class / verdict</th><th>reason</th><th>what to do</th></tr>\n", out);
	rc = qr_problems(h->db, HTML_PROBLEMS, &total, problem_row, h, err);
	fputs("</table></div>\n", out);
	if (rc)
		return rc;
	if (!total)
		fputs("<p>None: no account failed, no verification found a difference.</p>\n", out);
	else if (total > h->n)
		fprintf(out, "<p class=\"dim\" id=\"problems-more\">The first %d of %lld; "
			"<code>zmbatch accounts --state-filter failed</code> and "
			"<code>zmbatch report --format csv</code> list them all.</p>\n", h->n, total);
	if (s->counts[ACCT_FAILED] > 0)
		fputs("<p>Every failed account: <code>zmbatch run --retry-failed</code>, or "
		      "<code>zmbatch reset --failed</code> then <code>zmbatch run</code>.</p>\n", out);
	fputs("</section>\n", out);
	return ZMB_OK;
}

/* ---- sizes ---- */

#define MiB (1024LL * 1024)
static const long long size_edges[] = { MiB, 10 * MiB, 100 * MiB, 1024 * MiB, 10240 * MiB, 102400 * MiB };
#define NEDGES ((int)(sizeof size_edges / sizeof *size_edges))
static const char *const size_names[NEDGES + 2] = {
	"unknown", "&lt; 1 MiB", "1-10 MiB", "10-100 MiB", "0.1-1 GiB", "1-10 GiB", "10-100 GiB",
	"&#8805; 100 GiB",
};
enum { SZ_DONE, SZ_LEFT, SZ_FAILED, SZ_SKIPPED, SZ_N };
static const char *const sz_names[SZ_N] = { "done", "to migrate", "failed", "skipped" };
static const char *const sz_colours[SZ_N] = { C_DONE, C_LEFT, C_FAIL, C_SKIP };

struct sizes { long long n[NEDGES + 2][SZ_N]; };

static void size_row(void *arg, int b, const char *state, long long n, long long size)
{
	struct sizes *p = arg;
	(void)size;
	int i = acct_state_parse(state);
	int k = i == ACCT_DONE ? SZ_DONE : i == ACCT_FAILED ? SZ_FAILED : i == ACCT_SKIPPED ? SZ_SKIPPED : SZ_LEFT;
	if (b >= -1 && b <= NEDGES)
		p->n[b + 1][k] += n;
}

static void largest_row(void *arg, const struct qr_sized *r)
{
	struct html *h = arg;
	fputs("<tr>", h->out);
	td_account(h->out, r->account, r->target);
	fputs("<td>", h->out);
	html_esc(h->out, r->state);
	fputs("</td><td class=\"n\">", h->out);
	data_bytes(h->out, r->size);
	fprintf(h->out, "</td><td class=\"n\">%lld</td></tr>\n", r->attempts);
	h->n++;
}

static enum zmb_rc html_sizes(struct html *h, char **err)
{
	FILE *out = h->out;
	struct sizes p;
	enum zmb_rc rc;
	memset(&p, 0, sizeof p);

	fputs("<section id=\"sizes\">\n<h2>Mailbox sizes</h2>\n", out);
	if ((rc = qr_size_buckets(h->db, size_edges, NEDGES, size_row, &p, err)) != ZMB_OK)
		return rc;
	long long max = 0, all = 0;
	for (int b = 0; b < NEDGES + 2; b++) {
		long long t = 0;
		for (int k = 0; k < SZ_N; k++)
			t += p.n[b][k];
		all += t;
		if (t > max)
			max = t;
	}
	if (all > 0) {
		double ymax = axis_max((double)max, false);
		char *title = xasprintf("Accounts by mailbox size: %lld accounts, done and still to migrate", all);
		svg_open(out, "sizes", CH, title);
		free(title);
		svg_axes(out, CH, ymax, false, false, "#444c56");
		int y1 = CH - MB;
		double slot = (double)(CW - ML - MR) / (NEDGES + 2);
		for (int b = 0; b < NEDGES + 2; b++) {
			double y = y1;
			for (int k = 0; k < SZ_N; k++) {
				if (!p.n[b][k])
					continue;
				double hgt = (double)(y1 - MT) * (double)p.n[b][k] / ymax;
				y -= hgt;
				fprintf(out, "<rect class=\"size\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
					"fill=\"%s\"><title>%s: %lld %s</title></rect>\n", ML + slot * b + slot * 0.15, y,
					slot * 0.7, hgt, sz_colours[k], size_names[b], p.n[b][k], sz_names[k]);
			}
			fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
				ML + slot * b + slot / 2, y1 + 16, size_names[b]);
		}
		fputs("</svg>\n<figcaption><span class=\"legend\">", out);
		for (int k = 0; k < SZ_N; k++)
			fprintf(out, "<span><i style=\"background:%s\"></i>%s</span>", sz_colours[k], sz_names[k]);
		fputs("</span></figcaption></figure>\n<details><summary>data</summary><div class=\"scroll\">"
		      "<table><tr><th>size</th>", out);
		for (int k = 0; k < SZ_N; k++)
			fprintf(out, "<th class=\"n\">%s</th>", sz_names[k]);
		fputs("</tr>\n", out);
		for (int b = 0; b < NEDGES + 2; b++) {
			fprintf(out, "<tr><td>%s</td>", size_names[b]);
			for (int k = 0; k < SZ_N; k++)
				fprintf(out, "<td class=\"n\">%lld</td>", p.n[b][k]);
			fputs("</tr>\n", out);
		}
		fputs("</table></div></details>\n", out);
	} else {
		fputs("<p>No account yet.</p>\n", out);
	}
	fprintf(out, "<h3>The %d largest still to migrate</h3>\n<div class=\"scroll\"><table id=\"largest\">"
		"<tr><th>account</th><th>state</th><th class=\"n\">size</th><th class=\"n\">attempts</th></tr>\n",
		HTML_LARGEST);
	h->n = 0;
	rc = qr_largest_left(h->db, HTML_LARGEST, largest_row, h, err);
	fputs("</table></div>\n", out);
	if (rc == ZMB_OK && !h->n)
		fputs("<p>None left (or their sizes are unknown).</p>\n", out);
	fputs("</section>\n", out);
	return rc;
}

/* ---- tables: slowest, servers, stages, runs ---- */

static void slow_row(void *arg, const struct qr_account *r)
{
	struct html *h = arg;
	char d[32], t[32];
	fmt_dur(r->seconds, d);
	fmt_rate(r->seconds > 0 ? (double)r->bytes / r->seconds : 0, t);
	fputs("<tr>", h->out);
	td_account(h->out, r->account, r->target);
	fprintf(h->out, "<td class=\"n\"><data value=\"%.3f\">%s</data></td><td class=\"n\">",
		isfinite(r->seconds) ? r->seconds : 0, d);
	data_bytes(h->out, r->bytes);
	fprintf(h->out, "</td><td class=\"n\">%s</td><td>", t);
	html_esc(h->out, r->state);
	fputs("</td></tr>\n", h->out);
	h->n++;
}

static enum zmb_rc html_slowest(struct html *h, char **err)
{
	FILE *out = h->out;
	fprintf(out, "<section id=\"slowest\">\n<h2>The %d slowest accounts</h2>\n<div class=\"scroll\">"
		"<table><tr><th>account</th><th class=\"n\">time</th><th class=\"n\">bytes</th>"
		"<th class=\"n\">rate</th><th>state</th></tr>\n", HTML_SLOWEST);
	h->n = 0;
	enum zmb_rc rc = qr_slowest(h->db, HTML_SLOWEST, slow_row, h, err);
	fputs("</table></div>\n", out);
	if (rc == ZMB_OK && !h->n)
		fputs("<p>None finished yet.</p>\n", out);
	fputs("<p class=\"dim\">Time of the last successful pass of each account.</p>\n</section>\n", out);
	return rc;
}

static void server_row(void *arg, const struct qr_server *r)
{
	struct html *h = arg;
	FILE *out = h->out;
	char t[32];
	fmt_time(r->last_auth_at, t);
	fputs("<tr><td>", out);
	html_esc(out, r->role);
	fputs("</td><td class=\"acct\">", out);
	html_esc(out, r->host);
	fprintf(out, "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td>%s</td>",
		r->auth_requests, r->token_refreshes, r->auth_failures, t);
	if (r->has_pace) {
		char w[32];
		fmt_dur(r->throttle_wait_seconds, w);
		fprintf(out, "<td class=\"n\">%lld</td><td class=\"n\">%lld</td><td class=\"n\">%s</td>",
			r->requests, r->throttled, w);
		if (r->rate_limit > 0)
			fprintf(out, "<td class=\"n\">%.1f/s</td>", r->rate_limit);
		else
			fputs("<td class=\"n\">no cap</td>", out);
		fprintf(out, "<td class=\"n\">%lld</td>", r->concurrency_limit);
	} else {
		fputs("<td class=\"n dim\" colspan=\"5\">not recorded</td>", out);
	}
	fputs("</tr>\n", out);
	h->n++;
}

static enum zmb_rc html_servers(struct html *h, char **err)
{
	FILE *out = h->out;
	enum zmb_rc rc = ZMB_OK;
	fputs("<section id=\"servers\">\n<h2>Servers</h2>\n", out);
	h->n = 0;
	if (h->s->has_servers) {
		fputs("<div class=\"scroll\"><table><tr><th>role</th><th>host</th><th class=\"n\">logins</th>"
		      "<th class=\"n\">token refreshes</th><th class=\"n\">auth failures</th><th>last login</th>"
		      "<th class=\"n\">requests</th><th class=\"n\">throttled (429/503)</th>"
		      "<th class=\"n\">paused</th><th class=\"n\">rate limit</th><th class=\"n\">in flight</th>"
		      "</tr>\n", out);
		rc = qr_servers(h->db, server_row, h, err);
		fputs("</table></div>\n", out);
	}
	if (rc == ZMB_OK && !h->n)
		fputs("<p>No server counters recorded.</p>\n", out);
	fputs("</section>\n", out);
	return rc;
}

static void stage_row(void *arg, const struct qr_stage *r)
{
	struct html *h = arg;
	FILE *out = h->out;
	char t[32], d[32];
	double a = r->started_at, b = r->ended_at;
	fmt_time(a, t);
	if (b > 0 && a > 0)
		fmt_dur(b > a ? b - a : 0, d);
	else
		snprintf(d, sizeof d, "-");
	fputs("<tr><td>", out);
	html_esc(out, r->name);
	fputs("</td><td>", out);
	html_esc(out, r->type);
	fprintf(out, "</td><td class=\"st-%s\">", r->state && !strcmp(r->state, "failed") ? "failed" :
		r->state && !strcmp(r->state, "done") ? "done" : "other");
	html_esc(out, r->state);
	fprintf(out, "</td><td class=\"n\">%lld</td><td>%s</td><td class=\"n\">%s</td><td class=\"err\">",
		r->attempts, t, d);
	html_esc(out, r->error);
	fputs("</td><td class=\"err\">", out);
	html_esc_n(out, r->output, HTML_OUTPUT_MAX);
	fputs("</td></tr>\n", out);
	h->n++;
}

static void prov_failed_row(void *arg, const struct qr_prov_failed *r)
{
	struct html *h = arg;
	FILE *out = h->out;
	fputs("<tr><td>", out);
	html_esc(out, r->kind);
	fputs("</td>", out);
	td_account(out, r->name, r->target);
	fputs("<td>", out);
	html_esc(out, r->stage);
	fprintf(out, "</td><td class=\"n\">%lld</td><td class=\"err\">", r->attempts);
	html_esc(out, r->error);
	fputs("</td></tr>\n", out);
	h->n++;
}

static enum zmb_rc html_stages(struct html *h, char **err)
{
	FILE *out = h->out;
	const struct qr_prov *c = &h->s->prov;
	fputs("<section id=\"stages\">\n<h2>Stages</h2>\n<div class=\"scroll\"><table><tr><th>stage</th>"
	      "<th>type</th><th>state</th><th class=\"n\">attempts</th><th>started</th><th class=\"n\">took</th>"
	      "<th>error</th><th>result (the stage's output)</th></tr>\n", out);
	h->n = 0;
	enum zmb_rc rc = qr_stages(h->db, stage_row, h, err);
	fputs("</table></div>\n", out);
	if (rc)
		return rc;
	if (!h->n)
		fputs("<p>No stage recorded.</p>\n", out);
	if (c->present && c->total > 0) {
		long long failed = 0;
		fprintf(out, "<h3>Provisioned objects (%lld)</h3>\n<div class=\"scroll\"><table id=\"provision\">"
			"<tr><th>kind</th>", c->total);
		for (int o = 0; o < QP_NOUTCOMES; o++)
			fprintf(out, "<th class=\"n\">%s</th>", qp_outcome_names[o]);
		fputs("</tr>\n", out);
		for (int k = 0; k < QP_NKINDS; k++) {
			failed += c->n[k][QP_FAILED];
			if (c->kind_total[k] <= 0)
				continue;
			fprintf(out, "<tr><td>%s</td>", qp_kind_names[k]);
			for (int o = 0; o < QP_NOUTCOMES; o++)
				fprintf(out, "<td class=\"n\">%lld</td>", c->n[k][o]);
			fputs("</tr>\n", out);
		}
		fputs("</table></div>\n", out);
		if (failed > 0) {
			fputs("<h3>Failed objects (the next run tries them again)</h3>\n<div class=\"scroll\"><table>"
			      "<tr><th>kind</th><th>name</th><th>stage</th><th class=\"n\">attempts</th>"
			      "<th>last error</th></tr>\n", out);
			h->n = 0;
			rc = qr_prov_failed(h->db, HTML_PROV_FAILED, prov_failed_row, h, err);
			fputs("</table></div>\n", out);
			if (rc == ZMB_OK && h->n < failed)
				fprintf(out, "<p class=\"dim\">The first %d of %lld (<code>zmbatch report</code> "
					"lists them all).</p>\n", h->n, failed);
		}
	}
	fputs("</section>\n", out);
	return rc;
}

static void run_row(void *arg, const struct qr_run *r)
{
	struct html *h = arg;
	FILE *out = h->out;
	char t1[32], t2[32], d[32];
	bool newest = h->n == 0 && h->s->last.row.present && h->s->last.row.id == r->id;
	fmt_time(r->started_at, t1);
	fmt_time(r->ended_at, t2);
	if (r->ended_at > 0)
		fmt_dur(r->ended_at > r->started_at ? r->ended_at - r->started_at : 0, d);
	else if (newest && snapshot_running(h->s))
		fmt_dur(h->s->last.duration, d);
	else
		snprintf(d, sizeof d, "-");
	fprintf(out, "<tr><td class=\"n\">%lld</td><td><code>", r->id);
	html_esc(out, r->command);
	fputs("</code></td><td>", out);
	html_esc(out, r->host);
	fprintf(out, "</td><td>%s</td><td>%s</td><td class=\"n\">%s</td><td>", t1, t2, d);
	if (r->ended_at > 0 && r->has_exit)
		fprintf(out, "exit %d", r->exit_status);
	else if (r->ended_at > 0)
		fputs("ended", out);
	else if (newest)
		fputs(h->s->last.status, out);
	else
		fputs(h->s->merged ? "not ended" : "died", out);   /* merged: another shard's may run */
	fputs("</td><td class=\"n\">", out);
	data_bytes(out, r->bytes);
	fprintf(out, "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td></tr>\n", r->retries,
		r->token_refreshes);
	h->n++;
}

static enum zmb_rc html_runs(struct html *h, char **err)
{
	FILE *out = h->out;
	fputs("<section id=\"runs\">\n<h2>Runs</h2>\n<div class=\"scroll\"><table><tr><th class=\"n\">#</th>"
	      "<th>command</th><th>host</th><th>started</th><th>ended</th><th class=\"n\">took</th>"
	      "<th>status</th><th class=\"n\">bytes</th><th class=\"n\">retries</th>"
	      "<th class=\"n\">token refreshes</th></tr>\n", out);
	h->n = 0;
	enum zmb_rc rc = qr_runs(h->db, HTML_RUNS, run_row, h, err);
	fputs("</table></div>\n", out);
	if (rc == ZMB_OK && !h->n)
		fputs("<p>No run yet.</p>\n", out);
	else if (rc == ZMB_OK && h->s->runs > h->n)
		fprintf(out, "<p class=\"dim\">The newest %d of %lld runs.</p>\n", h->n, h->s->runs);
	fputs("</section>\n", out);
	return rc;
}

/* ---- report --merge: the source DBs and the duplicates ---- */

static void merge_src_row(void *arg, const struct qr_merge_src *r)
{
	struct html *h = arg;
	FILE *out = h->out;
	fputs("<tr><td><code>", out);
	html_esc(out, r->path);
	fputs("</code></td><td>", out);
	html_esc(out, r->shard ? r->shard : "-");
	fputs("</td><td class=\"n\">", out);
	data_int(out, r->accounts);
	for (int i = 0; i < ACCT_NSTATES; i++) {
		fputs("</td><td class=\"n\">", out);
		data_int(out, r->counts[i]);
	}
	fputs("</td><td class=\"n\">", out);
	data_bytes(out, r->bytes_moved);
	fputs("</td></tr>\n", out);
}

static void merge_dup_row(void *arg, const struct qr_merge_dup *r)
{
	struct html *h = arg;
	if (h->n++ >= HTML_PROBLEMS)
		return;
	fputs("<li class=\"bad\">account <code>", h->out);
	html_esc(h->out, r->account);
	fputs("</code> is in two state DBs: <code>", h->out);
	html_esc(h->out, r->db);
	fputs("</code> (reported from it) and <code>", h->out);
	html_esc(h->out, r->also_in);
	fputs("</code></li>\n", h->out);
}

static void merge_untaken_row(void *arg, const struct qr_merge_untaken *r)
{
	struct html *h = arg;
	if (h->n++ >= HTML_PROBLEMS)
		return;
	fputs("<li class=\"bad\">account <code>", h->out);
	html_esc(h->out, r->account);
	fputs("</code> is in no state DB: its home <code>", h->out);
	html_esc(h->out, r->home ? r->home : "none");
	fputs("</code> deals it to shard <code>", h->out);
	html_esc(h->out, r->shard);
	fputs("</code> (listed by <code>", h->out);
	html_esc(h->out, r->listed_by);
	fputs("</code>); run that shard again</li>\n", h->out);
}

/* The head of a capped list of merge errors: n accounts, then why; the rows follow. */
static void merge_list_open(struct html *h, long long n, const char *what, const char *why)
{
	fprintf(h->out, "<p class=\"bad\"><strong>Error: <data value=\"%lld\">%lld</data> account(s) "
		"%s.</strong> %s</p>\n<ul>\n", n, n, what, why);
	h->n = 0;
}

/* Its end, saying how many rows were left out. */
static void merge_list_close(struct html *h)
{
	fputs("</ul>\n", h->out);
	if (h->n > HTML_PROBLEMS)
		fprintf(h->out, "<p class=\"dim\">The first %d of %d.</p>\n", HTML_PROBLEMS, h->n);
}

static enum zmb_rc html_merge(struct html *h, char **err)
{
	FILE *out = h->out;
	if (!h->s->merged)
		return ZMB_OK;
	fputs("<section id=\"merge\">\n<h2>Merged state DBs</h2>\n<div class=\"scroll\"><table><tr>"
	      "<th>state DB</th><th>shard</th><th class=\"n\">accounts</th>", out);
	for (int i = 0; i < ACCT_NSTATES; i++)
		fprintf(out, "<th class=\"n\">%s</th>", acct_state_name((enum acct_state)i));
	fputs("<th class=\"n\">bytes moved</th></tr>\n", out);
	enum zmb_rc rc = qr_merge_sources(h->db, merge_src_row, h, err);
	fputs("</table></div>\n", out);
	if (rc == ZMB_OK && h->s->merge_dups) {
		merge_list_open(h, h->s->merge_dups, "in more than one state DB",
				"Each is reported once, from the first DB named; two shards worked on it.");
		rc = qr_merge_dups(h->db, merge_dup_row, h, err);
		merge_list_close(h);
	}
	if (rc == ZMB_OK && h->s->merge_untaken) {
		merge_list_open(h, h->s->merge_untaken, "in no state DB",
				"A shard listed them, dealt to a shard that has not run since: nothing has "
				"migrated them.");
		rc = qr_merge_untaken(h->db, merge_untaken_row, h, err);
		merge_list_close(h);
	}
	fputs("</section>\n", out);
	return rc;
}

enum zmb_rc report_html(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	struct html h = { out, db, s, 0 };
	enum zmb_rc rc;

	html_head(&h);
	html_summary(&h);
	if ((rc = html_merge(&h, err)) != ZMB_OK)
		return rc;
	if ((rc = html_progress(&h, err)) != ZMB_OK)
		return rc;
	if ((rc = html_throughput(&h, err)) != ZMB_OK)
		return rc;
	if ((rc = html_failures(&h, err)) != ZMB_OK)
		return rc;
	if ((rc = html_sizes(&h, err)) != ZMB_OK)
		return rc;
	if ((rc = html_slowest(&h, err)) != ZMB_OK)
		return rc;
	if ((rc = html_servers(&h, err)) != ZMB_OK)
		return rc;
	if ((rc = html_stages(&h, err)) != ZMB_OK)
		return rc;
	if ((rc = html_runs(&h, err)) != ZMB_OK)
		return rc;
	fputs("</main>\n<footer>zmbatch " ZMB_VERSION " &middot; one self-contained file: no script, "
	      "nothing loaded from elsewhere</footer>\n</body>\n</html>\n", out);
	return fmt_write_failed(out, err) ? ZMB_EIO : ZMB_OK;
}
