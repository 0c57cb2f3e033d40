/*
 * dkd_pool.c - worker threads, their queue, and the watchdog that takes a
 * job away from a worker stuck in its token.
 *
 * A C_Sign that does not return within sign_timeout (a hung HSM) must not
 * hang the caller: the watchdog marks that token down, queues a copy of
 * the job at the front (it is signed again with the standby key), and
 * starts a spare worker so the pool keeps its strength.  When the stuck
 * call returns, its worker drops the abandoned job and, being surplus,
 * retires.  The watchdog looks every WATCHDOG_TICK_MS while a worker holds
 * a job, and sleeps without waking while none does.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "common/dk_time.h"
#include "daemon/dkd_pool.h"
#include "daemon/dkd_sign.h"

#define POOL_SPARES_PER_WORKER 3 /* spare threads for stuck ones, per configured worker */
#define WATCHDOG_TICK_MS       50
/*
 * A worker that finds the queue empty while no other worker is busy spins
 * this long before it sleeps.  At one request at a time the next one comes
 * within a round trip to the caller; a sleeping worker is woken through
 * the scheduler, and on a VM whose idle vCPU halts that wake-up costs more
 * than the spin (docs/performance.md, "Latency").  Under load the queue is
 * not empty or another worker is busy, and nobody spins.
 */
#define POOL_SPIN_US 250
/*
 * A worker taking a job also takes the jobs of the same connection queued
 * behind it, up to POOL_BATCH_MAX, signs them one after another and hands
 * them on together: their answers leave in one write and wake the caller
 * once, and a pipelining caller's next requests come back together.  Only
 * what is already queued is taken, so one request at a time is never held
 * back; a job of another connection waits at most POOL_BATCH_MAX - 1 more
 * signatures.  POOL_BATCH_SCAN bounds the look down the queue (lock held).
 */
#define POOL_BATCH_MAX  8
#define POOL_BATCH_SCAN 64

struct dkd_worker {
	struct dkd_pool *pool;
	pthread_t thread;
	int started;
	int done;                /* thread has returned (joinable without blocking) */
	int stuck;               /* declared stuck by the watchdog */
	struct dkd_job *current; /* the job being signed (pool lock) */
	struct dkd_job *batch;   /* the rest of its batch, not started yet (pool lock) */
	struct dkd_sessions sessions;
};

struct dkd_pool {
	pthread_mutex_t lock; /* protects everything below but the constant fields */
	pthread_cond_t cond;  /* a job was queued, or stopping */
	struct dkd_job *head, *tail;
	size_t depth;
	int stopping;
	int live;              /* worker threads running and not stuck */
	atomic_int busy;       /* workers holding a job (read without the lock by the loop) */
	uint64_t last_wait_us; /* how long the last worker to wait for a job waited */
	atomic_uint submitted; /* jobs queued so far (read without the lock by a spinning worker) */
	int spinning;          /* workers in pool_spin: a new job needs no wake-up */
	int nslots;            /* started so far (slots are never reused) */

	/* constant after start */
	size_t queue_max;
	int nworkers;
	int maxslots;
	uint64_t timeout_us;
	void (*finish)(struct dkd_job *, void *);
	void *finish_arg;
	struct dkd_tokens *tokens;
	struct dkd_worker *workers;
	pthread_t watchdog;
	int watchdog_started;
	pthread_cond_t wd_cond; /* stopping, or a job taken while the watchdog is idle */
	int wd_idle;            /* the watchdog sleeps until a worker takes a job */
};

static void *worker_main(void *arg);

static inline void
pool_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Wait up to POOL_SPIN_US for a job without sleeping (called and returns with the lock held). */
static void
pool_spin(struct dkd_pool *p)
{
	unsigned seen = atomic_load_explicit(&p->submitted, memory_order_relaxed);
	uint64_t end = dk_now_us() + POOL_SPIN_US;
	int i;

	p->spinning++;
	pthread_mutex_unlock(&p->lock);
	do {
		for (i = 0; i < 64; i++) {
			if (atomic_load_explicit(&p->submitted, memory_order_relaxed) != seen)
				goto out;
			pool_cpu_relax();
		}
		sched_yield(); /* a thread woken on this core (the loop, the caller) runs at once */
	} while (dk_now_us() < end);
out:
	pthread_mutex_lock(&p->lock);
	p->spinning--;
}

/* w signs job from now on (pool lock held); an idle watchdog starts watching again. */
static void
pool_set_current(struct dkd_pool *p, struct dkd_worker *w, struct dkd_job *job)
{
	w->current = job;
	if (p->wd_idle)
		pthread_cond_signal(&p->wd_cond);
}

/* Move the queued jobs of job's connection behind it into w->batch (pool lock held). */
static void
pool_take_batch(struct dkd_pool *p, struct dkd_worker *w, const struct dkd_job *job)
{
	struct dkd_job **pp = &p->head, *j, *prev = NULL, **bt = &w->batch;
	int taken = 1, seen = 0;

	while ((j = *pp) != NULL && taken < POOL_BATCH_MAX && seen++ < POOL_BATCH_SCAN) {
		if (j->conn != job->conn || j->conn == NULL) {
			prev = j;
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		if (p->tail == j)
			p->tail = prev;
		p->depth--;
		j->next = NULL;
		*bt = j;
		bt = &j->next;
		taken++;
	}
}

/* Next job, or NULL when stopping with an empty queue or when w is surplus. */
static struct dkd_job *
pool_next(struct dkd_pool *p, struct dkd_worker *w)
{
	struct dkd_job *job = NULL;
	uint64_t idle_since = 0;
	int spun = 0;

	pthread_mutex_lock(&p->lock);
	if ((job = w->batch) != NULL) {
		/* The rest of the batch: the worker still counts as busy. */
		w->batch = job->next;
		job->next = NULL;
		pool_set_current(p, w, job);
		pthread_mutex_unlock(&p->lock);
		return job;
	}
	for (;;) {
		if (p->live > p->nworkers && !p->stopping) {
			p->live--; /* a spare retires once the pool is back to strength */
			break;
		}
		if (p->head != NULL) {
			job = p->head;
			p->head = job->next;
			if (p->head == NULL)
				p->tail = NULL;
			p->depth--;
			job->next = NULL;
			pool_set_current(p, w, job);
			pool_take_batch(p, w, job);
			break;
		}
		if (p->stopping)
			break;
		if (idle_since == 0)
			idle_since = dk_now_us();
		/* Spin only where it pays: the last wait for work was about a spin long. */
		if (!spun && p->busy == 0 && p->last_wait_us <= 2 * POOL_SPIN_US) {
			spun = 1;
			pool_spin(p);
			continue;
		}
		pthread_cond_wait(&p->cond, &p->lock);
	}
	if (job != NULL) {
		p->busy++;
		if (idle_since != 0)
			p->last_wait_us = dk_now_us() - idle_since;
	}
	pthread_mutex_unlock(&p->lock);
	return job;
}

/*
 * Done with job: *ours is 1 when it is still ours to hand on, 0 when it was
 * abandoned.  Returns 1 while the batch has more jobs.
 */
static int
pool_done(struct dkd_pool *p, struct dkd_worker *w, struct dkd_job *job, int *ours)
{
	int more;

	pthread_mutex_lock(&p->lock);
	*ours = !job->abandoned;
	w->current = NULL;
	more = w->batch != NULL;
	if (!more)
		p->busy--;
	if (w->stuck) {
		/* Back from the token at last: count again as a worker (pool_next may retire it).
		 */
		w->stuck = 0;
		p->live++;
	}
	pthread_mutex_unlock(&p->lock);
	return more;
}

static void *
worker_main(void *arg)
{
	struct dkd_worker *w = arg;
	struct dkd_pool *p = w->pool;
	struct dkd_job *job, *done = NULL, **dt = &done;
	int ours, more;

	(void)pthread_setname_np(pthread_self(), "dkd-worker"); /* top -H, /proc/PID/task */
	/* The queue is drained before the threads stop (SIGTERM answers what is queued). */
	while ((job = pool_next(p, w)) != NULL) {
		dkd_sign_run(&w->sessions, job);
		more = pool_done(p, w, job, &ours);
		if (ours) {
			*dt = job;
			dt = &job->next;
		} else {
			dkd_job_free(job); /* its copy was signed elsewhere */
		}
		if (more)
			continue;
		/* The batch is done: its jobs go on together. */
		if (done != NULL)
			p->finish(done, p->finish_arg);
		done = NULL;
		dt = &done;
	}
	dkd_sessions_close(&w->sessions);
	pthread_mutex_lock(&p->lock);
	w->done = 1;
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Start one more worker thread (pool lock held). */
static int
pool_spawn(struct dkd_pool *p)
{
	struct dkd_worker *w;
	int r;

	if (p->nslots >= p->maxslots)
		return dk_err_set(DK_ERR_INTERNAL, "no spare worker slot left");
	w = &p->workers[p->nslots];
	w->pool = p;
	if ((r = dkd_sessions_init(&w->sessions, p->tokens)) != 0)
		return r;
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		dkd_sessions_close(&w->sessions);
		return dk_err_set(DK_ERR_INTERNAL, "cannot start a worker thread");
	}
	w->started = 1;
	p->nslots++;
	p->live++;
	return 0;
}

/* Queue job first in line, whatever the queue limit (pool lock held). */
static void
pool_push_front(struct dkd_pool *p, struct dkd_job *job)
{
	job->next = p->head;
	p->head = job;
	if (p->tail == NULL)
		p->tail = job;
	p->depth++;
	atomic_fetch_add_explicit(&p->submitted, 1, memory_order_relaxed);
	pthread_cond_signal(&p->cond);
}

/* The jobs of w's batch not started yet go back to the front of the queue (pool lock held). */
static void
pool_return_batch(struct dkd_pool *p, struct dkd_worker *w)
{
	struct dkd_job *last;
	size_t n = 1;

	if (w->batch == NULL)
		return;
	for (last = w->batch; last->next != NULL; last = last->next)
		n++;
	last->next = p->head;
	p->head = w->batch;
	if (p->tail == NULL)
		p->tail = last;
	p->depth += n;
	w->batch = NULL;
	atomic_fetch_add_explicit(&p->submitted, (unsigned)n, memory_order_relaxed);
	pthread_cond_broadcast(&p->cond);
}

/* One worker stuck in its token for too long: take its job away (pool lock held). */
static void
pool_rescue(struct dkd_pool *p, struct dkd_worker *w, struct dkd_token *tok, uint64_t waited)
{
	struct dkd_job *copy;
	char why[160];

	snprintf(why, sizeof(why), "a call into the token did not return within %llu ms",
	    (unsigned long long)(p->timeout_us / 1000));
	dkd_token_down(tok, DK_ERR_TIMEOUT, why);
	w->stuck = 1;
	p->live--;
	pool_return_batch(p, w);
	if (dkd_job_clone(w->current, &copy) == 0) {
		w->current->abandoned = 1;
		pool_push_front(p, copy);
	} else {
		dk_log_err("request %llu cannot be retried after a token timeout (out of memory); "
		           "it is answered when the token returns",
		    (unsigned long long)w->current->req_id);
	}
	dk_log_warn("worker stuck for %llu ms in token \"%s\"; its request goes to the standby "
	            "key and a spare worker is started",
	    (unsigned long long)(waited / 1000), tok->name);
	if (pool_spawn(p) != 0)
		dk_log_err("cannot start a spare worker: %s; the pool runs with fewer workers "
		           "until the token returns",
		    dk_err_detail());
}

/* Is a worker (not one already declared stuck) signing a job?  Pool lock held. */
static int
pool_any_current(const struct dkd_pool *p)
{
	int i;

	for (i = 0; i < p->nslots; i++) {
		if (p->workers[i].current != NULL && !p->workers[i].stuck)
			return 1;
	}
	return 0;
}

static void *
watchdog_main(void *arg)
{
	struct dkd_pool *p = arg;
	struct dkd_worker *w;
	struct dkd_token *tok;
	struct timespec ts;
	uint64_t since, now;
	int i;

	(void)pthread_setname_np(pthread_self(), "dkd-watchdog"); /* top -H, /proc/PID/task */
	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		if (!pool_any_current(p)) {
			/* Nothing is being signed: sleep until a job is taken, not tick by tick. */
			p->wd_idle = 1;
			pthread_cond_wait(&p->wd_cond, &p->lock);
			p->wd_idle = 0;
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += WATCHDOG_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->wd_cond, &p->lock, &ts);
		now = dk_now_us();
		for (i = 0; i < p->nslots; i++) {
			w = &p->workers[i];
			since = atomic_load(&w->sessions.busy_since_us);
			tok = atomic_load(&w->sessions.busy_tok);
			if (w->stuck || w->current == NULL || w->current->abandoned || since == 0 ||
			    tok == NULL || now < since || now - since < p->timeout_us)
				continue;
			pool_rescue(p, w, tok, now - since);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int
dkd_pool_start(int nworkers, int queue_max, int64_t sign_timeout_ms, struct dkd_tokens *tokens,
    void (*finish)(struct dkd_job *, void *), void *arg, struct dkd_pool **out)
{
	struct dkd_pool *p;
	int i, r = 0;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return DK_ERR_NOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	pthread_cond_init(&p->wd_cond, NULL);
	p->queue_max = (size_t)queue_max;
	p->nworkers = nworkers;
	p->maxslots = nworkers * (1 + POOL_SPARES_PER_WORKER);
	p->timeout_us = (uint64_t)(sign_timeout_ms > 0 ? sign_timeout_ms : 2000) * 1000u;
	p->finish = finish;
	p->finish_arg = arg;
	p->tokens = tokens;
	if ((p->workers = calloc((size_t)p->maxslots, sizeof(*p->workers))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < nworkers && r == 0; i++)
		r = pool_spawn(p);
	pthread_mutex_unlock(&p->lock);
	if (r != 0)
		goto out;
	if (pthread_create(&p->watchdog, NULL, watchdog_main, p) != 0) {
		r = dk_err_set(DK_ERR_INTERNAL, "cannot start the watchdog thread");
		goto out;
	}
	p->watchdog_started = 1;
	*out = p;
	p = NULL;
out:
	if (p != NULL)
		dkd_pool_stop(p);
	return r;
}

int
dkd_pool_submit(struct dkd_pool *p, struct dkd_job *job)
{
	int r = 0;

	job->next = NULL;
	job->queued_us = dk_now_us();
	pthread_mutex_lock(&p->lock);
	if (p->stopping || p->depth >= p->queue_max) {
		r = DK_ERR_BUSY;
	} else {
		if (p->tail != NULL)
			p->tail->next = job;
		else
			p->head = job;
		p->tail = job;
		p->depth++;
		atomic_fetch_add_explicit(&p->submitted, 1, memory_order_relaxed);
		/*
		 * A spinning worker takes it (it re-checks the queue under this lock
		 * before it sleeps); waking a sleeping one as well costs a futex
		 * call and a context switch, and the two then fight for the lock.
		 */
		if (p->depth > (size_t)p->spinning)
			pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

size_t
dkd_pool_depth(struct dkd_pool *p)
{
	size_t d;

	pthread_mutex_lock(&p->lock);
	d = p->depth;
	pthread_mutex_unlock(&p->lock);
	return d;
}

int
dkd_pool_busy(struct dkd_pool *p)
{
	return atomic_load_explicit(&p->busy, memory_order_relaxed);
}

int
dkd_pool_workers(const struct dkd_pool *p)
{
	return p->nworkers;
}

int
dkd_pool_stop(struct dkd_pool *p)
{
	struct dkd_worker *w;
	int i, stuck;

	if (p == NULL)
		return 0;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_cond_broadcast(&p->wd_cond);
	pthread_mutex_unlock(&p->lock);
	if (p->watchdog_started)
		pthread_join(p->watchdog, NULL);
	for (i = 0; i < p->nslots; i++) {
		w = &p->workers[i];
		pthread_mutex_lock(&p->lock);
		stuck = w->stuck && !w->done;
		pthread_mutex_unlock(&p->lock);
		/* A thread still inside a hung token cannot be joined: leave it to exit(). */
		if (stuck)
			pthread_detach(w->thread);
		else
			pthread_join(w->thread, NULL);
	}
	/* With a stuck thread alive its memory must stay: the process is about to exit. */
	for (i = 0, stuck = 0; i < p->nslots; i++)
		stuck |= p->workers[i].stuck && !p->workers[i].done;
	if (stuck)
		return 1;
	free(p->workers);
	pthread_cond_destroy(&p->cond);
	pthread_cond_destroy(&p->wd_cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return 0;
}
