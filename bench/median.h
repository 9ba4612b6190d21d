/*
 * median.h: the statistic the benchmarks report.  A shared machine's
 * load comes in bursts; a median of several runs drops the runs a burst
 * hit, where a best or a mean would keep them.
 */
#ifndef BENCH_MEDIAN_H
#define BENCH_MEDIAN_H

#include <stdlib.h>

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

#endif
