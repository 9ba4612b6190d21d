/*
 * pairs.h: how the native benchmarks (blkbench, netbench) turn runs into
 * a row.  A job runs in pairs: raw and lguest back to back, which goes
 * first alternating.  A ratio within a pair compares two runs a second
 * apart, so a shared machine's load drifting moves both sides alike; the
 * row reports medians (of each side's rate and of the pairs' ratios),
 * because load comes in bursts and a median drops the runs a burst hit,
 * where a best or a mean would keep them.
 */
#ifndef BENCH_PAIRS_H
#define BENCH_PAIRS_H

#include "lguest.h"

#include <stdlib.h>

#define PAIRS_MAX	15

/* What one lguest run did: its rate, and kicks and interrupts per unit
 * of work (a request, a frame). */
struct lg_run {
	double rate, kicks, irqs;
};

/* One job's two sides; ctx is the benchmark's own. */
struct pair_sides {
	double (*raw)(void *ctx);		/* returns the rate */
	struct lg_run (*lguest)(void *ctx);
	void *ctx;
};

/* A row: medians of the rates and of the ratios, mean kicks and irqs. */
struct pair_row {
	double lguest, raw, ratio, kicks, irqs;
};

/* Seconds on a clock that never jumps. */
static inline double now(void)
{
	return monotonic_ns() / 1e9;
}

static inline int median_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of n values (reorders them). */
static inline double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), median_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Run n (at most PAIRS_MAX) pairs of s's sides and make their row. */
static inline struct pair_row run_pairs(const struct pair_sides *s, int n)
{
	double raw[PAIRS_MAX], lg[PAIRS_MAX], ratio[PAIRS_MAX];
	struct pair_row row = { 0 };

	n = MIN(n, PAIRS_MAX);
	for (int k = 0; k < n; k++) {
		struct lg_run run;

		if (k % 2)
			raw[k] = s->raw(s->ctx);
		run = s->lguest(s->ctx);
		if (!(k % 2))
			raw[k] = s->raw(s->ctx);
		lg[k] = run.rate;
		ratio[k] = raw[k] > 0 ? run.rate / raw[k] : 0;
		row.kicks += run.kicks / n;
		row.irqs += run.irqs / n;
	}
	row.lguest = median(lg, n);
	row.raw = median(raw, n);
	row.ratio = median(ratio, n);
	return row;
}

#endif
