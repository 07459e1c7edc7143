/*
 * cfr-audit: a TCP clock's rate as a front door can measure it.
 *
 * A per-flow TSval offset (scrub.c) hides where a host's TCP clock stands,
 * not how fast it runs. Every quartz runs a few tens of ppm off its nominal
 * rate, and that skew is stable enough to tell devices apart (Kohno, Broido
 * and Claffy, "Remote physical device fingerprinting", 2005). An adversary
 * that sees a whole flow fits a line through (its own receive time, TSval)
 * and reads the rate off the slope; flows with similar slopes may come from
 * one host. This file is that fit and nothing else: ordinary least squares,
 * the estimator the paper starts from (its lower-envelope fit, which
 * discards queueing delay, would only do better).
 *
 * The fit runs on z = ticks - t rather than on ticks: with a slope within
 * 10^-3 of 1, z stays small, and the sums keep the precision that a 0.01 ppm
 * estimate needs over a flow of two hours.
 */
#include <math.h>

#include "audit.h"

void skew_fit_add(struct skew_fit *f, double t_ms, double ticks)
{
	double z = ticks - t_ms;

	f->sx += t_ms;
	f->sy += z;
	f->sxx += t_ms * t_ms;
	f->sxy += t_ms * z;
	f->syy += z * z;
	f->n++;
}

bool skew_fit_result(const struct skew_fit *f, double *skew_ppm, double *se_ppm)
{
	double n = f->n, sxx, sxy, syy, slope, rss;

	if (f->n < 3)
		return false;
	sxx = f->sxx - f->sx * f->sx / n;
	sxy = f->sxy - f->sx * f->sy / n;
	syy = f->syy - f->sy * f->sy / n;
	if (!(sxx > 0))
		return false;
	slope = sxy / sxx;
	rss = syy - slope * sxy;
	*skew_ppm = slope * 1e6;
	*se_ppm = sqrt((rss > 0 ? rss : 0) / (n - 2) / sxx) * 1e6;
	return true;
}
