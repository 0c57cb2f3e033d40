/*
 * bench_load.h - the socket half of dkimkeep-bench: client threads, each
 * with its own connection to dkimkeepd keeping a window of sign requests
 * in flight, and idle connections held open beside them.
 */
#ifndef BENCH_LOAD_H
#define BENCH_LOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/bench_proc.h"
#include "client/bench_stats.h"
#include "client/dkimkeep_client.h"

#define BENCH_CLIENTS_MAX  1024
#define BENCH_INFLIGHT_MAX 256 /* the daemon pauses reading a connection beyond this */
#define BENCH_IDLE_MAX     100000

/* One prepared header section: the message with its From: rewritten to one domain. */
struct bench_msg {
	const char *domain;
	uint8_t *hdr;
	size_t hdr_len;
};

struct bench_load_opts {
	const char *socket;
	int alg;                      /* DKC_ALG_* */
	const struct bench_msg *msgs; /* requests go round these */
	size_t nmsgs;
	const uint8_t *body_hash; /* DKC_HASH_LEN bytes, relaxed body canonicalization */
	unsigned clients;
	unsigned inflight;
	unsigned idle; /* idle connections held open during the run */
	double warmup, seconds;
	int progress;
	pid_t daemon_pid; /* 0: unknown (no /proc figures) */
};

struct bench_load_result {
	uint64_t ok;                          /* OK answers in the measured window */
	uint64_t by_status[DKC_INTERNAL + 1]; /* other answers in the window, by status */
	uint64_t errors;                      /* sum of by_status */
	uint64_t io_errors;                   /* connections that broke or timed out */
	double elapsed;                       /* seconds measured */
	struct bench_hist hist;               /* latency of every answer in the window (µs) */
	unsigned daemon_connections;          /* as the daemon counted them at the end */
	struct bench_proc_sample d0, d1; /* the daemon at the start and end of the (last) window */
	int daemon_known;                /* /proc was read at both edges of every window */
	uint64_t daemon_cpu_us;          /* the daemon's CPU time in the window(s) */
	uint64_t daemon_ctxsw;           /* its context switches in the window(s) */
	uint64_t self_cpu_us;            /* this process's CPU time in the window(s) */
	unsigned rounds;                 /* windows added up (bench_load_merge) */
	char error[256];                 /* the first connection failure, if any */
};

/*
 * Run the socket half.  0 when the run took place (res says how it went,
 * including failed connections); DK_ERR_UNAVAILABLE with detail when the
 * daemon cannot be reached at all or too few file descriptors are left.
 */
int bench_load_run(const struct bench_load_opts *o, struct bench_load_result *res);

/* Add the window of src to dst (zeroed before the first); the last window's samples stay. */
void bench_load_merge(struct bench_load_result *dst, const struct bench_load_result *src);

#endif /* BENCH_LOAD_H */
