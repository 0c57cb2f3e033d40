/*
 * bench_load.c - the socket half of dkimkeep-bench.
 *
 * Each client thread owns one connection and keeps o->inflight requests
 * on it, the way an MTA that pipelines would: dkc_sign_queue for each free
 * slot, then dkc_result_recv (which sends them in one write) for whichever
 * answer comes next, and for every other answer already read in.  Latency
 * is from just before a request is queued to just after its answer is
 * read, so it includes the time spent queued in the daemon.
 */
#include <sys/resource.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/bench_load.h"
#include "common/dk_err.h"

#define LOAD_TIMEOUT_MS 30000
#define LOAD_FD_SPARE   64 /* descriptors kept for everything but connections */

struct load;

struct load_client {
	struct load *L;
	unsigned idx;
	pthread_t thread;
	int started;
	struct dkc_conn *conn;
	uint64_t *slot_id;             /* request id in flight in each window slot; 0: free */
	uint64_t *slot_t;              /* when it was sent (µs) */
	atomic_uint_fast64_t answered; /* every answer, any phase: for progress lines */
	uint64_t ok;
	uint64_t by_status[DKC_INTERNAL + 1];
	int failed;
	char error[256];
	struct bench_hist hist;
};

struct load {
	const struct bench_load_opts *o;
	struct bench_load_result *res;
	struct bench_run run;
	pthread_mutex_t gate_lock; /* protects gate */
	pthread_cond_t gate_cond;
	int gate; /* 0: wait, 1: go, -1: give up */
	atomic_int alive;
	atomic_int abort; /* every client thread has failed */
	struct load_client *c;
	struct dkc_conn *status_conn;
};

static int
load_gate_wait(struct load *L)
{
	int g;

	pthread_mutex_lock(&L->gate_lock);
	while (L->gate == 0)
		pthread_cond_wait(&L->gate_cond, &L->gate_lock);
	g = L->gate;
	pthread_mutex_unlock(&L->gate_lock);
	return g;
}

static void
load_gate_open(struct load *L, int g)
{
	pthread_mutex_lock(&L->gate_lock);
	L->gate = g;
	pthread_cond_broadcast(&L->gate_cond);
	pthread_mutex_unlock(&L->gate_lock);
}

static void
client_fail(struct load_client *c, const char *what, int r)
{
	c->failed = 1;
	snprintf(
	    c->error, sizeof(c->error), "client %u: %s: %s", c->idx + 1, what, dkc_strerror(r));
	if (atomic_fetch_sub(&c->L->alive, 1) == 1)
		atomic_store(&c->L->abort, 1);
}

/* Count one answer; 0, or DK_ERR_PROTO for an id that is not in flight. */
static int
client_answer(struct load_client *c, const struct dkc_result *res, uint64_t now)
{
	const struct bench_load_opts *o = c->L->o;
	unsigned i;

	for (i = 0; i < o->inflight && c->slot_id[i] != res->id; i++)
		;
	if (i == o->inflight || res->id == 0)
		return dk_err_set(DK_ERR_PROTO, "answer %llu (%s: %s) matches no request in flight",
		    (unsigned long long)res->id, dkc_status_name(res->status), res->error);
	if (atomic_load_explicit(&c->L->run.phase, memory_order_relaxed) == BENCH_MEASURE) {
		if (res->status == DKC_OK) {
			c->ok++;
			bench_hist_add(&c->hist, now - c->slot_t[i]);
		} else {
			c->by_status[res->status > 0 && res->status <= DKC_INTERNAL ? res->status
			                                                            : 0]++;
		}
	}
	c->slot_id[i] = 0;
	atomic_fetch_add_explicit(&c->answered, 1, memory_order_relaxed);
	return 0;
}

static void *
client_main(void *arg)
{
	struct load_client *c = arg;
	const struct bench_load_opts *o = c->L->o;
	struct dkc_sign_req req;
	struct dkc_result res;
	const struct bench_msg *m;
	uint64_t k = c->idx, id;
	unsigned out = 0, i = 0;
	int alg = o->alg, r;

	if (load_gate_wait(c->L) < 0)
		return NULL;
	memset(&req, 0, sizeof(req));
	req.algs = &alg;
	req.nalgs = 1;
	req.body_hash = o->body_hash;
	for (;;) {
		while (out < o->inflight &&
		       atomic_load_explicit(&c->L->run.phase, memory_order_relaxed) != BENCH_STOP) {
			/* Client i starts at domain i, so the clients spread over the domains. */
			m = &o->msgs[k++ % o->nmsgs];
			req.header_section = m->hdr;
			req.header_len = m->hdr_len;
			while (c->slot_id[i] != 0)
				i = (i + 1) % o->inflight;
			c->slot_t[i] = bench_now_us();
			/* Queued: dkc_result_recv below sends them all in one write. */
			if ((r = dkc_sign_queue(c->conn, &req, &id)) != 0) {
				client_fail(c, "sending a request", r);
				return NULL;
			}
			c->slot_id[i] = id;
			out++;
		}
		if (out == 0)
			break;
		/* Every answer already read in is counted before the next requests go. */
		do {
			if ((r = dkc_result_recv(c->conn, &res)) != 0) {
				client_fail(c, "reading an answer", r);
				return NULL;
			}
			r = client_answer(c, &res, bench_now_us());
			dkc_result_free(&res);
			if (r != 0) {
				client_fail(c, "reading an answer", r);
				return NULL;
			}
			out--;
		} while (out > 0 && dkc_result_ready(c->conn));
	}
	return NULL;
}

static uint64_t
load_count(void *arg)
{
	struct load *L = arg;
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < L->o->clients; i++)
		n += atomic_load_explicit(&L->c[i].answered, memory_order_relaxed);
	return n;
}

/* At the edges of the measured window: what the daemon and this process used. */
static void
load_mark(void *arg, enum bench_phase phase)
{
	struct load *L = arg;
	struct dkc_status_info *st = NULL;

	if (phase == BENCH_MEASURE) {
		L->res->self_cpu_us = bench_proc_self_cpu_us();
		bench_proc_sample(L->o->daemon_pid, &L->res->d0);
	} else if (phase == BENCH_STOP) {
		L->res->self_cpu_us = bench_proc_self_cpu_us() - L->res->self_cpu_us;
		bench_proc_sample(L->o->daemon_pid, &L->res->d1);
		L->res->daemon_known = L->res->d0.ok && L->res->d1.ok;
		if (L->res->daemon_known) {
			L->res->daemon_cpu_us = L->res->d1.cpu_us - L->res->d0.cpu_us;
			L->res->daemon_ctxsw = L->res->d1.ctxsw - L->res->d0.ctxsw;
		}
		if (L->status_conn != NULL && dkc_status(L->status_conn, &st) == 0)
			L->res->daemon_connections = st->connections;
		dkc_status_free(st);
	}
}

/* Make room for the connections: raise the soft descriptor limit when needed. */
static int
load_fd_room(const struct bench_load_opts *o)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)o->clients + o->idle + LOAD_FD_SPARE;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		return dk_err_set(DK_ERR_UNAVAILABLE,
		    "%u clients and %u idle connections need about %llu file descriptors, "
		    "but the hard limit is %llu; raise it (ulimit -Hn, LimitNOFILE=) or open "
		    "fewer --connections",
		    o->clients, o->idle, (unsigned long long)need, (unsigned long long)rl.rlim_max);
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return dk_err_set(DK_ERR_UNAVAILABLE,
		    "cannot raise the file descriptor limit to %llu; raise it with ulimit -n",
		    (unsigned long long)need);
	return 0;
}

/* Put "what: <the error's text>" in the error detail. */
static int
load_conn_fail(int r, const char *what, unsigned i, unsigned n)
{
	char why[512];

	snprintf(why, sizeof(why), "%s", dkc_strerror(r));
	return dk_err_set(r, "%s connection %u of %u: %s", what, i + 1, n, why);
}

static int
load_connect_all(struct load *L, struct dkc_conn **idle)
{
	const struct bench_load_opts *o = L->o;
	unsigned i;
	int r;

	if ((r = dkc_connect(o->socket, LOAD_TIMEOUT_MS, &L->status_conn)) != 0)
		return r;
	for (i = 0; i < o->idle; i++) {
		if ((r = dkc_connect(o->socket, LOAD_TIMEOUT_MS, &idle[i])) != 0)
			return load_conn_fail(r, "idle", i, o->idle);
	}
	for (i = 0; i < o->clients; i++) {
		L->c[i].L = L;
		L->c[i].idx = i;
		atomic_init(&L->c[i].answered, 0);
		bench_hist_init(&L->c[i].hist);
		L->c[i].slot_id = calloc(o->inflight, sizeof(uint64_t));
		L->c[i].slot_t = calloc(o->inflight, sizeof(uint64_t));
		if (L->c[i].slot_id == NULL || L->c[i].slot_t == NULL)
			return DK_ERR_NOMEM;
		if ((r = dkc_connect(o->socket, LOAD_TIMEOUT_MS, &L->c[i].conn)) != 0)
			return load_conn_fail(r, "client", i, o->clients);
	}
	return 0;
}

static void
load_collect(struct load *L)
{
	struct bench_load_result *res = L->res;
	unsigned i, s;

	for (i = 0; i < L->o->clients; i++) {
		struct load_client *c = &L->c[i];

		res->ok += c->ok;
		bench_hist_merge(&res->hist, &c->hist);
		for (s = 0; s <= DKC_INTERNAL; s++) {
			res->by_status[s] += c->by_status[s];
			res->errors += c->by_status[s];
		}
		if (c->failed) {
			res->io_errors++;
			if (res->error[0] == '\0')
				snprintf(res->error, sizeof(res->error), "%s", c->error);
		}
	}
}

int
bench_load_run(const struct bench_load_opts *o, struct bench_load_result *res)
{
	struct dkc_conn **idle = NULL;
	struct load L;
	unsigned i;
	int r;

	memset(res, 0, sizeof(*res));
	bench_hist_init(&res->hist);
	memset(&L, 0, sizeof(L));
	L.o = o;
	L.res = res;
	pthread_mutex_init(&L.gate_lock, NULL);
	pthread_cond_init(&L.gate_cond, NULL);
	atomic_init(&L.alive, (int)o->clients);
	atomic_init(&L.abort, 0);
	atomic_init(&L.run.phase, BENCH_WARMUP);
	if ((r = load_fd_room(o)) != 0)
		goto out;
	L.c = calloc(o->clients, sizeof(*L.c));
	idle = calloc(o->idle + 1, sizeof(*idle));
	if (L.c == NULL || idle == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if (o->progress)
		fprintf(stderr,
		    "dkimkeep-bench: socket: opening %u client and %u idle connections\n",
		    o->clients, o->idle);
	if ((r = load_connect_all(&L, idle)) != 0)
		goto out;
	for (i = 0; i < o->clients; i++) {
		if (pthread_create(&L.c[i].thread, NULL, client_main, &L.c[i]) != 0) {
			r = dk_err_set(DK_ERR_INTERNAL, "cannot start client thread %u", i + 1);
			goto out;
		}
		L.c[i].started = 1;
	}
	L.run.what = "socket";
	L.run.unit = "msgs/s";
	L.run.warmup = o->warmup;
	L.run.seconds = o->seconds;
	L.run.progress = o->progress;
	L.run.count = load_count;
	L.run.mark = load_mark;
	L.run.arg = &L;
	load_gate_open(&L, 1);
	bench_run_drive(&L.run, &L.abort);
	res->elapsed = L.run.elapsed;
	res->rounds = 1;
	r = 0;
out:
	if (r != 0) {
		atomic_store(&L.run.phase, BENCH_STOP);
		load_gate_open(&L, -1);
	}
	for (i = 0; L.c != NULL && i < o->clients; i++) {
		if (L.c[i].started)
			pthread_join(L.c[i].thread, NULL);
	}
	if (r == 0)
		load_collect(&L);
	for (i = 0; L.c != NULL && i < o->clients; i++) {
		dkc_close(L.c[i].conn);
		free(L.c[i].slot_id);
		free(L.c[i].slot_t);
	}
	for (i = 0; idle != NULL && i < o->idle; i++)
		dkc_close(idle[i]);
	dkc_close(L.status_conn);
	free(idle);
	free(L.c);
	pthread_cond_destroy(&L.gate_cond);
	pthread_mutex_destroy(&L.gate_lock);
	return r;
}

void
bench_load_merge(struct bench_load_result *dst, const struct bench_load_result *src)
{
	unsigned s;

	dst->ok += src->ok;
	for (s = 0; s <= DKC_INTERNAL; s++)
		dst->by_status[s] += src->by_status[s];
	dst->errors += src->errors;
	dst->io_errors += src->io_errors;
	dst->elapsed += src->elapsed;
	bench_hist_merge(&dst->hist, &src->hist);
	dst->daemon_connections = src->daemon_connections;
	dst->daemon_known = (dst->rounds == 0 || dst->daemon_known) && src->daemon_known;
	dst->daemon_cpu_us += src->daemon_cpu_us;
	dst->daemon_ctxsw += src->daemon_ctxsw;
	dst->d0 = dst->rounds == 0 ? src->d0 : dst->d0;
	dst->d1 = src->d1;
	dst->self_cpu_us += src->self_cpu_us;
	dst->rounds += src->rounds;
	if (dst->error[0] == '\0' && src->error[0] != '\0')
		snprintf(dst->error, sizeof(dst->error), "%s", src->error);
}
