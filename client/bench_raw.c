/*
 * bench_raw.c - the PKCS#11 half of dkimkeep-bench.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/bench_proc.h"
#include "client/bench_raw.h"
#include "common/dk_err.h"

struct bench_raw;

struct raw_thread {
	struct bench_raw *R;
	unsigned idx;
	pthread_t thread;
	int started;
	struct hsm_session *s;
	atomic_uint_fast64_t made; /* any phase, for progress lines */
	uint64_t sigs;
	uint64_t errors;
	char error[512];
	struct bench_hist hist;
};

struct bench_raw {
	const struct bench_raw_opts *o;
	struct bench_raw_result *res; /* of the measurement under way */
	struct hsm_module *m;
	struct hsm_token *tok;
	struct hsm_key key;
	struct bench_run run;
	uint64_t cpu0; /* this process's CPU time when measuring began */
	atomic_int alive;
	atomic_int abort;
	struct raw_thread *t;
};

static void *
raw_main(void *arg)
{
	struct raw_thread *t = arg;
	uint8_t digest[32], sig[HSM_SIG_MAX];
	uint64_t t0, t1;
	size_t sig_len;
	int r;

	/* Any 32 bytes will do: the token signs them as it would a header hash. */
	memset(digest, 0xa5 ^ (int)t->idx, sizeof(digest));
	while (atomic_load_explicit(&t->R->run.phase, memory_order_relaxed) != BENCH_STOP) {
		sig_len = sizeof(sig);
		t0 = bench_now_us();
		r = hsm_sign_digest(t->s, &t->R->key, digest, sig, &sig_len);
		t1 = bench_now_us();
		if (r != 0) {
			t->errors++;
			snprintf(t->error, sizeof(t->error), "session %u: %s", t->idx + 1,
			    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
			if (atomic_fetch_sub(&t->R->alive, 1) == 1)
				atomic_store(&t->R->abort, 1);
			return NULL;
		}
		if (atomic_load_explicit(&t->R->run.phase, memory_order_relaxed) == BENCH_MEASURE) {
			t->sigs++;
			bench_hist_add(&t->hist, t1 - t0);
		}
		atomic_fetch_add_explicit(&t->made, 1, memory_order_relaxed);
	}
	return NULL;
}

static uint64_t
raw_count(void *arg)
{
	struct bench_raw *R = arg;
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < R->o->threads; i++)
		n += atomic_load_explicit(&R->t[i].made, memory_order_relaxed);
	return n;
}

static void
raw_mark(void *arg, enum bench_phase phase)
{
	struct bench_raw *R = arg;

	if (phase == BENCH_MEASURE)
		R->cpu0 = bench_proc_self_cpu_us();
	else if (phase == BENCH_STOP)
		R->res->cpu_us += bench_proc_self_cpu_us() - R->cpu0;
}

/* The key the daemon signs with: the newest active key of the domain on its primary token. */
static int
raw_find_key(
    const struct bench_raw_opts *o, struct hsm_session *s, const char *token, struct hsm_key *out)
{
	struct hsm_key *keys = NULL;
	const struct hsm_key *best = NULL;
	size_t i, n = 0;
	int r;

	if ((r = hsm_key_list(s, &keys, &n)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		const struct hsm_key_meta *m = &keys[i].meta;

		if (strcmp(m->domain, o->domain) != 0 || strcmp(m->alg, o->alg) != 0 ||
		    strcmp(m->slot, "primary") != 0 || strcmp(m->state, "active") != 0)
			continue;
		if (best == NULL || m->changed > best->meta.changed)
			best = &keys[i];
	}
	if (best == NULL) {
		r = dk_err_set(DK_ERR_KEY_NOT_FOUND,
		    "token \"%s\" holds no active %s key for %s; run \"dkimkeep key list "
		    "--domain %s\", or \"dkimkeep key generate --domain %s --alg %s --activate\"",
		    token, o->alg, o->domain, o->domain, o->domain, o->alg);
		goto out;
	}
	*out = *best;
	r = 0;
out:
	free(keys);
	return r;
}

static int
raw_open(const struct bench_raw_opts *o, struct hsm_module **m, struct hsm_token **t,
    const struct dk_conf_token **ct)
{
	const struct dk_conf_domain *d = dk_conf_domain(o->conf, o->domain);
	int r;

	if (d == NULL || strcmp(d->name, o->domain) != 0)
		return dk_err_set(DK_ERR_CONFIG, "no [domain %s] in %s", o->domain, o->conf->path);
	if ((*ct = dk_conf_token(o->conf, d->primary)) == NULL)
		return dk_err_set(DK_ERR_CONFIG, "[domain %s] names token \"%s\", which %s lacks",
		    d->name, d->primary, o->conf->path);
	if ((r = dk_conf_token_setenv(*ct)) != 0 || (r = hsm_module_open((*ct)->module, m)) != 0 ||
	    (r = hsm_token_open(*m, (*ct)->uri, t)) != 0 ||
	    (r = hsm_token_login(*t, (*ct)->pin_file)) != 0)
		return r;
	return 0;
}

int
bench_raw_open(const struct bench_raw_opts *o, struct bench_raw **out, struct bench_raw_result *res)
{
	const struct dk_conf_token *ct = NULL;
	struct hsm_session *s0 = NULL;
	struct bench_raw *R;
	unsigned i;
	int r;

	*out = NULL;
	memset(res, 0, sizeof(*res));
	bench_hist_init(&res->hist);
	if ((R = calloc(1, sizeof(*R))) == NULL)
		return DK_ERR_NOMEM;
	R->o = o;
	if ((r = raw_open(o, &R->m, &R->tok, &ct)) != 0 ||
	    (r = hsm_session_open(R->tok, &s0)) != 0 ||
	    (r = raw_find_key(o, s0, hsm_token_label(R->tok), &R->key)) != 0)
		goto out;
	snprintf(res->selector, sizeof(res->selector), "%s", R->key.meta.selector);
	snprintf(res->key_id, sizeof(res->key_id), "%s", R->key.id_hex);
	snprintf(res->token, sizeof(res->token), "%s", hsm_token_label(R->tok));
	res->bits = R->key.bits;
	if ((R->t = calloc(o->threads, sizeof(*R->t))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	/* One session per thread, as the daemon's workers have (SoftHSM crashes on sharing). */
	for (i = 0; i < o->threads; i++) {
		R->t[i].R = R;
		R->t[i].idx = i;
		if ((r = hsm_session_open(R->tok, &R->t[i].s)) != 0)
			goto out;
	}
	*out = R;
	R = NULL;
	r = 0;
out:
	if (s0 != NULL)
		hsm_session_close(s0);
	bench_raw_close(R);
	return r;
}

int
bench_raw_measure(struct bench_raw *R, struct bench_raw_result *res)
{
	const struct bench_raw_opts *o = R->o;
	unsigned i;
	int r;

	R->res = res;
	atomic_init(&R->alive, (int)o->threads);
	atomic_init(&R->abort, 0);
	for (i = 0; i < o->threads; i++) {
		atomic_init(&R->t[i].made, 0);
		R->t[i].sigs = R->t[i].errors = 0;
		R->t[i].error[0] = '\0';
		R->t[i].started = 0;
		bench_hist_init(&R->t[i].hist);
	}
	if (o->progress)
		fprintf(stderr,
		    "dkimkeep-bench: raw: key %s (selector %s) on token \"%s\", %u session%s\n",
		    R->key.id_hex, R->key.meta.selector, hsm_token_label(R->tok), o->threads,
		    o->threads == 1 ? "" : "s");
	memset(&R->run, 0, sizeof(R->run));
	atomic_init(&R->run.phase, BENCH_WARMUP);
	R->run.what = "raw";
	R->run.unit = "sigs/s";
	R->run.warmup = o->warmup;
	R->run.seconds = o->seconds;
	R->run.progress = o->progress;
	R->run.count = raw_count;
	R->run.mark = raw_mark;
	R->run.arg = R;
	for (i = 0; i < o->threads; i++) {
		if (pthread_create(&R->t[i].thread, NULL, raw_main, &R->t[i]) != 0) {
			r = dk_err_set(DK_ERR_INTERNAL, "cannot start signing thread %u", i + 1);
			goto out;
		}
		R->t[i].started = 1;
	}
	bench_run_drive(&R->run, &R->abort);
	res->elapsed += R->run.elapsed;
	r = 0;
out:
	atomic_store(&R->run.phase, BENCH_STOP);
	for (i = 0; i < o->threads; i++) {
		if (!R->t[i].started)
			continue;
		pthread_join(R->t[i].thread, NULL);
		res->sigs += R->t[i].sigs;
		res->errors += R->t[i].errors;
		bench_hist_merge(&res->hist, &R->t[i].hist);
		if (R->t[i].error[0] && !res->error[0])
			snprintf(res->error, sizeof(res->error), "%s", R->t[i].error);
	}
	return r;
}

void
bench_raw_close(struct bench_raw *R)
{
	unsigned i;

	if (R == NULL)
		return;
	for (i = 0; R->t != NULL && i < R->o->threads; i++) {
		if (R->t[i].s != NULL)
			hsm_session_close(R->t[i].s);
	}
	free(R->t);
	hsm_token_close(R->tok);
	if (R->m != NULL)
		hsm_module_close(R->m);
	free(R);
}
