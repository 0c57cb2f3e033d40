/*
 * bench_raw.h - the PKCS#11 half of dkimkeep-bench: the same key the
 * daemon signs with, signed with straight through hsm_sign_digest() from
 * as many threads (one session each) as the daemon has workers.  This is
 * the rate the daemon is held to.
 */
#ifndef BENCH_RAW_H
#define BENCH_RAW_H

#include <stdint.h>

#include "client/bench_stats.h"
#include "common/dk_config.h"
#include "hsm/hsm.h"

#define BENCH_RAW_THREADS_MAX 64

struct bench_raw_opts {
	const struct dk_conf *conf;
	const char *domain; /* a configured domain: its active key on its primary token */
	const char *alg;    /* "rsa-sha256" | "ed25519-sha256" */
	unsigned threads;
	double warmup, seconds;
	int progress;
};

struct bench_raw_result {
	uint64_t sigs;          /* signatures made in the measured window */
	uint64_t errors;        /* failed signatures (the thread stops at the first) */
	double elapsed;         /* seconds measured */
	struct bench_hist hist; /* latency of each hsm_sign_digest (µs) */
	uint64_t cpu_us;        /* this process's CPU time in the window */
	char selector[HSM_SELECTOR_MAX + 1];
	char key_id[2 * HSM_KEY_ID_LEN + 1];
	char token[HSM_LABEL_MAX + 1];
	unsigned bits;
	char error[512]; /* the first signing failure, if any */
};

struct bench_raw;

/*
 * Open the domain's primary token (module, URI, login with its pin_file),
 * find the key, open one session per thread; res gets the key's names and
 * zero counts.  A dk_err code with detail when the token, the PIN file or
 * the key cannot be had.  o must outlive *out.
 */
int bench_raw_open(
    const struct bench_raw_opts *o, struct bench_raw **out, struct bench_raw_result *res);
/*
 * Sign for o->warmup + o->seconds and add what was measured to res.  0
 * when the run took place (failed signatures are counted in res).
 */
int bench_raw_measure(struct bench_raw *R, struct bench_raw_result *res);
/* Close the sessions, the token and the module; safe on NULL. */
void bench_raw_close(struct bench_raw *R);

#endif /* BENCH_RAW_H */
