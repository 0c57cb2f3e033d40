/*
 * bench_stats.c - latency histograms and the timed phases of dkimkeep-bench.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/bench_stats.h"

/*
 * Values below 2 * SUB have a bucket each.  Above, a value is shifted right
 * until SUB_BITS + 1 bits remain: the shift picks the row (a power of two),
 * the remaining bits the column, so a bucket is at most 1/SUB of its value.
 */
static unsigned
hist_index(uint64_t v)
{
	unsigned shift;

	if (v < 2 * BENCH_HIST_SUB)
		return (unsigned)v;
	/* v >> shift has its top bit at SUB_BITS: a column in [SUB, 2 * SUB). */
	shift = 63u - (unsigned)__builtin_clzll(v) - BENCH_HIST_SUB_BITS;
	return shift * BENCH_HIST_SUB + (unsigned)(v >> shift);
}

/* The middle of bucket i's range. */
static uint64_t
hist_value(unsigned i)
{
	unsigned shift;

	if (i < 2 * BENCH_HIST_SUB)
		return i;
	shift = i / BENCH_HIST_SUB - 1;
	return ((uint64_t)(i - shift * BENCH_HIST_SUB) << shift) + ((uint64_t)1 << shift) / 2;
}

void
bench_hist_init(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void
bench_hist_add(struct bench_hist *h, uint64_t us)
{
	h->n[hist_index(us)]++;
	h->count++;
	h->sum += us;
	if (us > h->max)
		h->max = us;
}

void
bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	unsigned i;

	for (i = 0; i < BENCH_HIST_BUCKETS; i++)
		dst->n[i] += src->n[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t
bench_hist_pct(const struct bench_hist *h, double pct)
{
	uint64_t want, seen = 0, v;
	unsigned i;

	if (h->count == 0)
		return 0;
	if (pct >= 100.0)
		return h->max;
	want = (uint64_t)((double)h->count * pct / 100.0 + 0.5);
	if (want == 0)
		want = 1;
	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->n[i];
		if (seen >= want) {
			v = hist_value(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

uint64_t
bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Sleep until the monotonic time until_us, or until *abort; 0 when aborted. */
static int
run_sleep_until(uint64_t until_us, const atomic_int *abort)
{
	struct timespec ts;
	uint64_t now, step;

	while ((now = bench_now_us()) < until_us) {
		if (atomic_load(abort))
			return 0;
		step = until_us - now;
		if (step > 50000)
			step = 50000; /* look at abort every 50 ms */
		ts.tv_sec = (time_t)(step / 1000000u);
		ts.tv_nsec = (long)(step % 1000000u) * 1000;
		nanosleep(&ts, NULL);
	}
	return !atomic_load(abort);
}

static void
run_set(struct bench_run *run, enum bench_phase phase)
{
	atomic_store(&run->phase, (int)phase);
	if (run->mark != NULL)
		run->mark(run->arg, phase);
}

void
bench_run_drive(struct bench_run *run, const atomic_int *abort)
{
	uint64_t start = bench_now_us(), t_measure, t_stop, next, last_n, n, now, last_t;
	unsigned sec = 0;

	t_measure = start + (uint64_t)(run->warmup * 1e6);
	t_stop = t_measure + (uint64_t)(run->seconds * 1e6);
	if (run->progress && run->warmup > 0)
		fprintf(
		    stderr, "dkimkeep-bench: %s: warming up for %.1f s\n", run->what, run->warmup);
	if (!run_sleep_until(t_measure, abort)) {
		run_set(run, BENCH_STOP);
		run->elapsed = 0;
		return;
	}
	t_measure = bench_now_us();
	run_set(run, BENCH_MEASURE);
	last_n = run->count(run->arg);
	last_t = t_measure;
	for (;;) {
		next = last_t + 1000000u;
		if (next > t_stop)
			next = t_stop;
		if (!run_sleep_until(next, abort))
			break;
		now = bench_now_us();
		if (now >= t_stop)
			break;
		n = run->count(run->arg);
		sec++;
		if (run->progress)
			fprintf(stderr, "dkimkeep-bench: %s: %u/%.0f s: %.0f %s\n", run->what, sec,
			    run->seconds, (double)(n - last_n) * 1e6 / (double)(now - last_t),
			    run->unit);
		last_n = n;
		last_t = now;
	}
	t_stop = bench_now_us();
	run_set(run, BENCH_STOP);
	run->elapsed = (double)(t_stop - t_measure) / 1e6;
}
