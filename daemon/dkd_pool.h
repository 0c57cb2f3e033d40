/*
 * dkd_pool.h - the worker threads: a bounded queue of jobs in; each
 * finished job is handed to a sink (the audit writer or the loop's outbox).
 * Each worker owns one PKCS#11 session per token and never shares it.
 */
#ifndef DKD_POOL_H
#define DKD_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/dkd_job.h"
#include "daemon/dkd_tokens.h"

struct dkd_pool;

/*
 * Start nworkers threads over tokens with a queue of at most queue_max
 * jobs.  finish(jobs, arg) is called from the worker with finished jobs, a
 * list linked by next (a worker takes the queued jobs of one connection
 * together and hands them on together); it takes them over and must be
 * thread-safe.  A
 * token call longer than sign_timeout_ms marks the token down and the job
 * is signed again (with the standby key) by another worker.
 */
int dkd_pool_start(int nworkers, int queue_max, int64_t sign_timeout_ms, struct dkd_tokens *tokens,
    void (*finish)(struct dkd_job *, void *), void *arg, struct dkd_pool **out);
/* Queue a job; DK_ERR_BUSY at once when the queue is full or stopping. */
int dkd_pool_submit(struct dkd_pool *p, struct dkd_job *job);
/* Jobs queued and not yet taken by a worker. */
size_t dkd_pool_depth(struct dkd_pool *p);
int dkd_pool_workers(const struct dkd_pool *p);
/* Workers signing now (a hint: read without the lock). */
int dkd_pool_busy(struct dkd_pool *p);
/*
 * Finish every queued job (handed to the sink as usual), stop and join the
 * threads, free the pool.  1 when a worker is still stuck inside a hung token
 * (left detached, the pool not freed): the token must not be finalized.
 */
int dkd_pool_stop(struct dkd_pool *p);

#endif /* DKD_POOL_H */
