/*
 * bench_report.h - what one dkimkeep-bench run was asked to do and what it
 * learnt, written as text or as one JSON document (dkimkeep-bench --help,
 * "OUTPUT").
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stddef.h>
#include <sys/types.h>

#include "client/bench_load.h"
#include "client/bench_raw.h"
#include "dkim/dkim.h"

/* The command line. */
struct bench_opts {
	const char *conf_path;
	const char *message;
	const char *socket;
	enum dkim_alg alg;
	unsigned clients, inflight, domains, idle, raw_threads, rounds;
	double seconds, warmup;
	int no_raw, json, quiet;
};

/* What one run learnt, for the text and JSON outputs. */
struct bench_report {
	const struct bench_opts *o;
	size_t message_bytes;
	unsigned workers;
	pid_t daemon_pid;
	struct bench_load_result *load;
	struct bench_raw_result *raw; /* NULL with --no-raw or when it failed */
};

/* Write rp as one JSON document on stdout; DK_ERR_NOMEM when it cannot be formatted. */
int bench_report_json(const struct bench_report *rp);
/* Write rp as text on stdout: the socket, daemon and raw lines, then ratio=. */
void bench_report_text(const struct bench_report *rp);

#endif /* BENCH_REPORT_H */
