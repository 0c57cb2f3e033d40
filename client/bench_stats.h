/*
 * bench_stats.h - latency histograms and the timed phases of dkimkeep-bench.
 *
 * A log-linear histogram (128 sub-buckets per power of two, so any
 * percentile is within 1% of the true value) of microsecond latencies:
 * fixed size, no allocation, cheap to fill from a hot loop and to merge
 * across threads.  The maximum is kept exactly.
 */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB      (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS  ((64 - BENCH_HIST_SUB_BITS + 1) * BENCH_HIST_SUB)

struct bench_hist {
	uint64_t n[BENCH_HIST_BUCKETS];
	uint64_t count;
	uint64_t sum; /* of all values, for the mean */
	uint64_t max;
};

void bench_hist_init(struct bench_hist *h);
/* Count one value (microseconds). */
void bench_hist_add(struct bench_hist *h, uint64_t us);
/* Add every count of src to dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* The value at percentile pct (0 < pct <= 100); the exact maximum for 100; 0 when empty. */
uint64_t bench_hist_pct(const struct bench_hist *h, double pct);

/*
 * The phases of one timed run.  Worker threads read phase on every
 * operation: they count what completes in BENCH_MEASURE and stop starting
 * new operations at BENCH_STOP.
 */
enum bench_phase {
	BENCH_WARMUP = 0,
	BENCH_MEASURE = 1,
	BENCH_STOP = 2,
};

struct bench_run {
	atomic_int phase;
	const char *what; /* "socket" | "raw", for progress lines */
	const char *unit; /* "msgs/s" | "sigs/s" */
	double warmup, seconds;
	int progress; /* progress lines on stderr */
	/* Operations completed so far (any phase), for progress lines. */
	uint64_t (*count)(void *arg);
	/* Called on the driving thread right after each phase change. */
	void (*mark)(void *arg, enum bench_phase phase);
	void *arg;
	double elapsed; /* out: seconds between MEASURE and STOP */
};

/*
 * Drive run: warm up, measure, stop; sleeps on the calling thread and
 * prints one progress line a second when asked.  Returns early (with the
 * phase at BENCH_STOP) when *abort becomes non-zero.
 */
void bench_run_drive(struct bench_run *run, const atomic_int *abort);

/* Monotonic time in microseconds. */
uint64_t bench_now_us(void);

#endif /* BENCH_STATS_H */
