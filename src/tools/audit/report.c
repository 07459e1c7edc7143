/*
 * cfr-audit: the table (text or Markdown), the SVG plot, and the progress
 * line. Output only: every number printed here was computed elsewhere.
 *
 * The plot uses log axes because the interesting contrasts span orders of
 * magnitude: a linker's precision falls from 1 to about one over the number
 * of subscribers, and anonymity sets grow from 1 to thousands.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"

static void ratio(char *out, size_t n, double v)
{
	if (isnan(v))
		snprintf(out, n, "-");
	else if (v == 0)
		snprintf(out, n, "0");
	else if (v >= 0.1)
		snprintf(out, n, "%.3f", v);
	else
		snprintf(out, n, "%.2e", v);
}

static void cell(bool md, int width, const char *text)
{
	if (md)
		printf("| %s ", text);
	else
		printf("%*s ", width, text);
}

static void pr_cells(bool md, const struct metrics *m, enum linker l)
{
	char p[16], r[16];

	ratio(p, sizeof(p), precision(m, l));
	ratio(r, sizeof(r), recall(m, l));
	cell(md, 9, p);
	cell(md, 9, r);
}

/* The header of a table: the configuration column, then <n> headers. */
static void header(bool md, const char *const *cols, const int *widths, unsigned n)
{
	unsigned j;

	if (md)
		printf("| configuration ");
	else
		printf("%-32s ", "configuration");
	for (j = 0; j < n; j++)
		cell(md, widths[j], cols[j]);
	printf(md ? "|\n" : "\n");
	if (md) {
		printf("|---");
		for (j = 0; j < n; j++)
			printf("|--:");
		printf("|\n");
	}
}

static void row_start(bool md, const struct row *r)
{
	if (md)
		printf("| %s ", r->name);
	else
		printf("%-32s ", r->name);
}

static void linker_headers(const enum linker *l, unsigned n, char (*buf)[32], const char **cols,
                           int *widths)
{
	unsigned j;

	for (j = 0; j < n; j++) {
		snprintf(buf[2 * j], 32, "%s P", linker_names[l[j]]);
		snprintf(buf[2 * j + 1], 32, "%s R", linker_names[l[j]]);
		cols[2 * j] = buf[2 * j];
		cols[2 * j + 1] = buf[2 * j + 1];
		widths[2 * j] = widths[2 * j + 1] = 9;
	}
}

/* Anonymity sets, the three main linkers, the best of all, mutual information. */
static void table_main(const struct row *rows, unsigned n, bool md)
{
	static const enum linker links[] = {LINK_ADDR, LINK_WINDOW, LINK_TSVAL};
	char buf[6][32];
	const char *cols[14] = {"anon p5", "anon median"};
	int widths[14] = {7, 8};
	unsigned i, j;

	linker_headers(links, 3, buf, cols + 2, widths + 2);
	cols[8] = "best linker", widths[8] = 16;
	cols[9] = "best P", widths[9] = 9;
	cols[10] = "best R", widths[10] = 9;
	cols[11] = "MI bits", widths[11] = 7;
	cols[12] = "MI floor", widths[12] = 8;
	header(md, cols, widths, 13);
	for (i = 0; i < n; i++) {
		const struct metrics *m = &rows[i].m;
		enum linker b = best_linker(m);
		char v[32];

		row_start(md, &rows[i]);
		snprintf(v, sizeof(v), "%u", m->anon_p5);
		cell(md, 7, v);
		snprintf(v, sizeof(v), "%u", m->anon_median);
		cell(md, 8, v);
		for (j = 0; j < 3; j++)
			pr_cells(md, m, links[j]);
		cell(md, 16, linker_names[b]);
		pr_cells(md, m, b);
		snprintf(v, sizeof(v), "%.3f", m->mi_bits);
		cell(md, 7, v);
		snprintf(v, sizeof(v), "%.3f", m->mi_floor_bits);
		cell(md, 8, v);
		printf(md ? "|\n" : "\n");
	}
}

/* With --all: the other linkers of the first packet, and the engine's own counters. */
static void table_extended(const struct row *rows, unsigned n, bool md)
{
	static const enum linker links[] = {LINK_LABEL, LINK_ADDR_FP, LINK_WINDOW_FP};
	char buf[6][32];
	const char *cols[11];
	int widths[11];
	unsigned i, j;

	linker_headers(links, 3, buf, cols, widths);
	cols[6] = "MI raw", widths[6] = 8;
	cols[7] = "<k share", widths[7] = 8;
	cols[8] = "eng-med", widths[8] = 8;
	cols[9] = "drops", widths[9] = 6;
	cols[10] = "seconds", widths[10] = 7;
	header(md, cols, widths, 11);
	for (i = 0; i < n; i++) {
		const struct metrics *m = &rows[i].m;
		char v[32];

		row_start(md, &rows[i]);
		for (j = 0; j < 3; j++)
			pr_cells(md, m, links[j]);
		snprintf(v, sizeof(v), "%.3f", m->mi_raw_bits);
		cell(md, 8, v);
		if (m->has_engine)
			snprintf(v, sizeof(v), "%.4f", m->below_k_share);
		else
			snprintf(v, sizeof(v), "-");
		cell(md, 8, v);
		if (m->has_engine)
			snprintf(v, sizeof(v), "%.1f", m->engine_median);
		else
			snprintf(v, sizeof(v), "-");
		cell(md, 8, v);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)m->engine_errors);
		cell(md, 6, v);
		snprintf(v, sizeof(v), "%.1f", rows[i].seconds);
		cell(md, 7, v);
		printf(md ? "|\n" : "\n");
	}
}

/*
 * The TTL and clock-skew linkers, with what they work from: the TTLs the
 * front door sees, the share of flows long enough for a clock-rate
 * estimate, and chance (the precision of joining pairs at random), over all
 * flows and over those.
 */
static void table_side(const struct row *rows, unsigned n, bool md)
{
	static const enum linker ttl[] = {LINK_TTL, LINK_ADDR_TTL};
	static const enum linker skew[] = {LINK_SKEW, LINK_ADDR_SKEW};
	char buf_t[4][32], buf_s[4][32];
	const char *cols[12];
	int widths[12];
	unsigned i, j;

	cols[0] = "TTLs seen", widths[0] = 9;
	linker_headers(ttl, 2, buf_t, cols + 1, widths + 1);
	cols[5] = "skew flows", widths[5] = 10;
	linker_headers(skew, 2, buf_s, cols + 6, widths + 6);
	cols[10] = "skew chance", widths[10] = 11;
	cols[11] = "chance", widths[11] = 9;
	header(md, cols, widths, 12);
	for (i = 0; i < n; i++) {
		const struct metrics *m = &rows[i].m;
		char v[32];

		row_start(md, &rows[i]);
		snprintf(v, sizeof(v), "%u", m->ttl_values);
		cell(md, 9, v);
		for (j = 0; j < 2; j++)
			pr_cells(md, m, ttl[j]);
		ratio(v, sizeof(v), m->flows ? (double)m->skew_flows / (double)m->flows : NAN);
		cell(md, 10, v);
		for (j = 0; j < 2; j++)
			pr_cells(md, m, skew[j]);
		ratio(v, sizeof(v), skew_chance(m));
		cell(md, 11, v);
		ratio(v, sizeof(v), chance(m));
		cell(md, 9, v);
		printf(md ? "|\n" : "\n");
	}
}

/*
 * With several gateways: the set an alias's slice leaves (the subscribers
 * live on its gateway) beside the one it leaves with one gateway (live on
 * any), and the bits the slice gives away, measured (the mean of log2 of
 * their ratio over new flows) and as the split predicts (log2 N).
 */
static void table_gateways(const struct row *rows, unsigned n, bool md)
{
	static const char *const cols[] = {"anon median",    "gw set p5",  "gw set median",
	                                   "all gws median", "slice bits", "log2 N",
	                                   "MI bits",        "MI floor"};
	static const int widths[] = {11, 9, 13, 14, 10, 6, 7, 8};
	unsigned i;

	header(md, cols, widths, 8);
	for (i = 0; i < n; i++) {
		const struct metrics *m = &rows[i].m;
		char v[32];

		row_start(md, &rows[i]);
		snprintf(v, sizeof(v), "%u", m->anon_median);
		cell(md, 11, v);
		if (m->has_engine) {
			snprintf(v, sizeof(v), "%u", m->gw_p5);
			cell(md, 9, v);
			snprintf(v, sizeof(v), "%u", m->gw_median);
			cell(md, 13, v);
			snprintf(v, sizeof(v), "%u", m->all_median);
			cell(md, 14, v);
			snprintf(v, sizeof(v), "%.3f", m->slice_bits);
			cell(md, 10, v);
		} else {
			cell(md, 9, "-");
			cell(md, 13, "-");
			cell(md, 14, "-");
			cell(md, 10, "-");
		}
		snprintf(v, sizeof(v), "%.3f", log2(m->gateways));
		cell(md, 6, v);
		snprintf(v, sizeof(v), "%.3f", m->mi_bits);
		cell(md, 7, v);
		snprintf(v, sizeof(v), "%.3f", m->mi_floor_bits);
		cell(md, 8, v);
		printf(md ? "|\n" : "\n");
	}
}

/*
 * Peer-to-peer flows (--p2p-share): the same-mapping linker (address and
 * port) and what it joins across classes, a subscriber's peer-to-peer
 * socket and its other flows.
 */
static void table_p2p(const struct row *rows, unsigned n, bool md)
{
	static const enum linker links[] = {LINK_ADDR_PORT};
	char buf[2][32];
	const char *cols[5];
	int widths[5];
	unsigned i;

	cols[0] = "p2p flows", widths[0] = 9;
	linker_headers(links, 1, buf, cols + 1, widths + 1);
	cols[3] = "p2p-other pairs", widths[3] = 15;
	cols[4] = "same sub", widths[4] = 9;
	header(md, cols, widths, 5);
	for (i = 0; i < n; i++) {
		const struct metrics *m = &rows[i].m;
		char v[32];

		row_start(md, &rows[i]);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)m->p2p_flows);
		cell(md, 9, v);
		pr_cells(md, m, LINK_ADDR_PORT);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)m->p2p_cross.predicted);
		cell(md, 15, v);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)m->p2p_cross.correct);
		cell(md, 9, v);
		printf(md ? "|\n" : "\n");
	}
}

void report_text(const struct row *rows, unsigned n, bool md, bool all)
{
	table_main(rows, n, md);
	if (all) {
		printf("\n");
		table_extended(rows, n, md);
	}
	printf("\n");
	table_side(rows, n, md);
	if (n && rows[0].m.gateways > 1) {
		printf("\n");
		table_gateways(rows, n, md);
	}
	if (n && rows[0].m.p2p_flows) {
		printf("\n");
		table_p2p(rows, n, md);
	}
	if (n) {
		const struct metrics *m = &rows[0].m;

		printf("\n%llu flows, %llu subscribers, %.3g same-subscriber pairs (chance %.2g), "
		       "H(subscriber) = %.2f bits\n",
		       (unsigned long long)m->flows, (unsigned long long)m->subscribers,
		       (double)m->true_pairs, chance(m), m->h_sub_bits);
	}
}

/* x position of <v> on a log axis from 10^lo to 10^hi mapped onto [x0, x0 + w]. */
static double logx(double v, double lo, double hi, double x0, double w)
{
	double l = v > 0 ? log10(v) : lo;

	if (l < lo)
		l = lo;
	if (l > hi)
		l = hi;
	return x0 + (l - lo) / (hi - lo) * w;
}

static void axis(FILE *f, double x0, double w, double y, double lo, double hi, const char *title)
{
	int e;

	fprintf(f, "<text x='%.0f' y='28' font-weight='bold'>%s</text>\n", x0, title);
	for (e = (int)lo; e <= (int)hi; e++) {
		double x = x0 + (e - lo) / (hi - lo) * w;

		fprintf(f, "<line x1='%.1f' y1='40' x2='%.1f' y2='%.0f' stroke='#ddd'/>\n", x, x,
		        y);
		fprintf(f,
		        "<text x='%.1f' y='%.0f' text-anchor='middle' font-size='11'>1e%d</text>\n",
		        x, y + 14, e);
	}
}

static void bar(FILE *f, double x0, double x1, double y, double h, const char *color)
{
	fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'/>\n", x0, y,
	        x1 - x0 > 1 ? x1 - x0 : 1, h, color);
}

int report_svg(const char *path, const struct row *rows, unsigned n)
{
	const double label_w = 210, panel_w = 330, gap = 40, row_h = 44, top = 44;
	const double x1 = label_w, x2 = label_w + panel_w + gap;
	const double bottom = top + n * row_h;
	FILE *f = fopen(path, "w");
	unsigned i;

	if (!f)
		return -1;
	fprintf(f,
	        "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' "
	        "font-family='sans-serif' font-size='12'>\n<rect width='100%%' height='100%%' "
	        "fill='white'/>\n",
	        x2 + panel_w + 20, bottom + 60);
	axis(f, x1, panel_w, bottom, -6, 0, "Best linker at the front door (log)");
	axis(f, x2, panel_w, bottom, 0, 5, "Anonymity set of a new flow (log)");
	for (i = 0; i < n; i++) {
		const struct metrics *m = &rows[i].m;
		enum linker b = best_linker(m);
		double y = top + i * row_h, p = precision(m, b), r = recall(m, b);

		fprintf(f, "<text x='8' y='%.1f'>%s</text>\n", y + 18, rows[i].name);
		fprintf(f, "<text x='8' y='%.1f' font-size='10' fill='#555'>best: %s</text>\n",
		        y + 32, linker_names[b]);
		bar(f, x1, logx(isnan(p) ? 0 : p, -6, 0, x1, panel_w), y + 4, 14, "#c0392b");
		bar(f, x1, logx(r, -6, 0, x1, panel_w), y + 20, 14, "#2980b9");
		bar(f, x2, logx(m->anon_p5, 0, 5, x2, panel_w), y + 4, 14, "#8e44ad");
		bar(f, x2, logx(m->anon_median, 0, 5, x2, panel_w), y + 20, 14, "#27ae60");
	}
	fprintf(f,
	        "<g font-size='11'><rect x='%.0f' y='%.0f' width='10' height='10' fill='#c0392b'/>"
	        "<text x='%.0f' y='%.0f'>precision</text>"
	        "<rect x='%.0f' y='%.0f' width='10' height='10' fill='#2980b9'/>"
	        "<text x='%.0f' y='%.0f'>recall (of all same-subscriber pairs)</text>"
	        "<rect x='%.0f' y='%.0f' width='10' height='10' fill='#8e44ad'/>"
	        "<text x='%.0f' y='%.0f'>5th percentile</text>"
	        "<rect x='%.0f' y='%.0f' width='10' height='10' fill='#27ae60'/>"
	        "<text x='%.0f' y='%.0f'>median</text></g>\n",
	        x1, bottom + 28, x1 + 14, bottom + 37, x1 + 90, bottom + 28, x1 + 104, bottom + 37,
	        x2, bottom + 28, x2 + 14, bottom + 37, x2 + 110, bottom + 28, x2 + 124,
	        bottom + 37);
	fprintf(f, "</svg>\n");
	return fclose(f) == 0 ? 0 : -1;
}

static struct timespec last_progress;
static bool progress_shown;

void progress(const char *what, uint64_t done, uint64_t total)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (progress_shown && now.tv_sec == last_progress.tv_sec)
		return;
	last_progress = now;
	progress_shown = true;
	fprintf(stderr, "\r  %-28s %11llu / %llu (%3.0f%%)", what, (unsigned long long)done,
	        (unsigned long long)total, total ? 100.0 * (double)done / (double)total : 100.0);
}

void progress_done(void)
{
	if (progress_shown)
		fprintf(stderr, "\n");
	progress_shown = false;
}
