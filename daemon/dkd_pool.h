/*
 * dkd_pool.h - the worker threads: a bounded queue of jobs in, a list of
 * finished jobs out.  Each worker owns one PKCS#11 session per token and
 * never shares it.
 */
#ifndef DKD_POOL_H
#define DKD_POOL_H

#include <stddef.h>

#include "daemon/dkd_job.h"
#include "daemon/dkd_tokens.h"

struct dkd_pool;

/*
 * Start nworkers threads over tokens with a queue of at most queue_max
 * jobs.  done(arg) is called from a worker when the finished list goes
 * from empty to non-empty; it must be thread-safe (event_active()).
 */
int dkd_pool_start(int nworkers, int queue_max, struct dkd_tokens *tokens, void (*done)(void *),
    void *arg, struct dkd_pool **out);
/* Queue a job; DK_ERR_BUSY at once when the queue is full or stopping. */
int dkd_pool_submit(struct dkd_pool *p, struct dkd_job *job);
/* Take every finished job (a list linked by next, oldest first). */
struct dkd_job *dkd_pool_take_done(struct dkd_pool *p);
/* Jobs queued and not yet taken by a worker. */
size_t dkd_pool_depth(struct dkd_pool *p);
int dkd_pool_workers(const struct dkd_pool *p);
/* Finish every queued job, stop and join the threads, free the pool
 * (finished jobs not yet taken are freed). */
void dkd_pool_stop(struct dkd_pool *p);

#endif /* DKD_POOL_H */
