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

void report_text(const struct row *rows, unsigned n, bool md, bool all)
{
	static const enum linker main_links[] = {LINK_ADDR, LINK_WINDOW, LINK_TSVAL};
	static const enum linker more_links[] = {LINK_LABEL, LINK_ADDR_FP, LINK_WINDOW_FP};
	unsigned i, j;
	char buf[64];

	if (md)
		printf("| configuration | anon p5 | anon median ");
	else
		printf("%-32s %7s %7s ", "configuration", "anon-p5", "anon-med");
	for (j = 0; j < 3; j++) {
		snprintf(buf, sizeof(buf), "%s P", linker_names[main_links[j]]);
		cell(md, 9, buf);
		snprintf(buf, sizeof(buf), "%s R", linker_names[main_links[j]]);
		cell(md, 9, buf);
	}
	cell(md, 16, "best linker");
	cell(md, 9, "best P");
	cell(md, 9, "best R");
	cell(md, 7, "MI bits");
	cell(md, 8, "MI floor");
	if (all) {
		for (j = 0; j < 3; j++) {
			snprintf(buf, sizeof(buf), "%s P", linker_names[more_links[j]]);
			cell(md, 9, buf);
			snprintf(buf, sizeof(buf), "%s R", linker_names[more_links[j]]);
			cell(md, 9, buf);
		}
		cell(md, 8, "MI raw");
		cell(md, 8, "<k share");
		cell(md, 8, "eng-med");
		cell(md, 6, "drops");
		cell(md, 7, "seconds");
	}
	printf(md ? "|\n" : "\n");
	if (md) {
		unsigned cols = 3 + 6 + 5 + (all ? 11 : 0);

		for (j = 0; j < cols; j++)
			printf(j == 0 ? "|---" : "|--:");
		printf("|\n");
	}
	for (i = 0; i < n; i++) {
		const struct metrics *m = &rows[i].m;
		enum linker b = best_linker(m);

		if (md)
			printf("| %s | %u | %u ", rows[i].name, m->anon_p5, m->anon_median);
		else
			printf("%-32s %7u %7u ", rows[i].name, m->anon_p5, m->anon_median);
		for (j = 0; j < 3; j++)
			pr_cells(md, m, main_links[j]);
		cell(md, 16, linker_names[b]);
		pr_cells(md, m, b);
		snprintf(buf, sizeof(buf), "%.3f", m->mi_bits);
		cell(md, 7, buf);
		snprintf(buf, sizeof(buf), "%.3f", m->mi_floor_bits);
		cell(md, 8, buf);
		if (all) {
			for (j = 0; j < 3; j++)
				pr_cells(md, m, more_links[j]);
			snprintf(buf, sizeof(buf), "%.3f", m->mi_raw_bits);
			cell(md, 8, buf);
			if (m->has_engine)
				snprintf(buf, sizeof(buf), "%.4f", m->below_k_share);
			else
				snprintf(buf, sizeof(buf), "-");
			cell(md, 8, buf);
			if (m->has_engine)
				snprintf(buf, sizeof(buf), "%.1f", m->engine_median);
			else
				snprintf(buf, sizeof(buf), "-");
			cell(md, 8, buf);
			snprintf(buf, sizeof(buf), "%llu", (unsigned long long)m->engine_errors);
			cell(md, 6, buf);
			snprintf(buf, sizeof(buf), "%.1f", rows[i].seconds);
			cell(md, 7, buf);
		}
		printf(md ? "|\n" : "\n");
	}
	if (n) {
		const struct metrics *m = &rows[0].m;

		printf(
		    "%s%llu flows, %llu subscribers, %.3g same-subscriber pairs, H(subscriber) = "
		    "%.2f bits\n",
		    md ? "\n" : "", (unsigned long long)m->flows,
		    (unsigned long long)m->subscribers, (double)m->true_pairs, m->h_sub_bits);
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
