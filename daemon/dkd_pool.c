/*
 * dkd_pool.c - worker threads and their queues.
 */
#include <pthread.h>
#include <stdlib.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "common/dk_time.h"
#include "daemon/dkd_pool.h"
#include "daemon/dkd_sign.h"

struct dkd_worker {
	struct dkd_pool *pool;
	pthread_t thread;
	int started;
	struct dkd_sessions sessions;
};

struct dkd_pool {
	pthread_mutex_t lock; /* protects everything below */
	pthread_cond_t cond;  /* a job was queued, or stopping */
	struct dkd_job *head, *tail;
	size_t depth;
	size_t queue_max;
	int stopping;

	void (*finish)(struct dkd_job *, void *);
	void *finish_arg;
	struct dkd_tokens *tokens;
	struct dkd_worker *workers;
	int nworkers;
};

static struct dkd_job *
pool_next(struct dkd_pool *p)
{
	struct dkd_job *job;

	pthread_mutex_lock(&p->lock);
	while (p->head == NULL && !p->stopping)
		pthread_cond_wait(&p->cond, &p->lock);
	job = p->head;
	if (job != NULL) {
		p->head = job->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->depth--;
		job->next = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	return job;
}

static void *
worker_main(void *arg)
{
	struct dkd_worker *w = arg;
	struct dkd_job *job;

	/* The queue is drained before the threads stop (SIGTERM answers what is queued). */
	while ((job = pool_next(w->pool)) != NULL) {
		dkd_sign_run(&w->sessions, job);
		w->pool->finish(job, w->pool->finish_arg);
	}
	dkd_sessions_close(&w->sessions);
	return NULL;
}

int
dkd_pool_start(int nworkers, int queue_max, struct dkd_tokens *tokens,
    void (*finish)(struct dkd_job *, void *), void *arg, struct dkd_pool **out)
{
	struct dkd_pool *p;
	int i, r;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return DK_ERR_NOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->queue_max = (size_t)queue_max;
	p->finish = finish;
	p->finish_arg = arg;
	p->tokens = tokens;
	if ((p->workers = calloc((size_t)nworkers, sizeof(*p->workers))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	p->nworkers = nworkers;
	for (i = 0; i < nworkers; i++) {
		p->workers[i].pool = p;
		if ((r = dkd_sessions_init(&p->workers[i].sessions, tokens)) != 0)
			goto out;
		if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
			r = dk_err_set(DK_ERR_INTERNAL, "cannot start worker thread %d", i);
			goto out;
		}
		p->workers[i].started = 1;
	}
	*out = p;
	p = NULL;
	r = 0;
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
dkd_pool_workers(const struct dkd_pool *p)
{
	return p->nworkers;
}

void
dkd_pool_stop(struct dkd_pool *p)
{
	int i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nworkers; i++) {
		if (p->workers[i].started)
			pthread_join(p->workers[i].thread, NULL);
		else
			dkd_sessions_close(&p->workers[i].sessions);
	}
	free(p->workers);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
