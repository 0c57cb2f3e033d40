/*
 * milter_pool.h - dkimkeep-milter: connections to dkimkeepd shared by the
 * milter's threads.
 *
 * A thread takes an idle connection (or opens one), signs, and gives it
 * back.  A pooled connection the daemon has closed meanwhile (a restart) is
 * replaced once, transparently.  Every call is bounded by the timeout.
 */
#ifndef MILTER_POOL_H
#define MILTER_POOL_H

#include <stddef.h>

#include "client/dkimkeep_client.h"

/* Idle connections kept open; busier moments open more and close them after. */
#define MILTER_POOL_IDLE_MAX 16

struct milter_pool;

/* Errors: DK_ERR_NOMEM.  Nothing is connected yet. */
int milter_pool_new(const char *socket_path, int timeout_ms, struct milter_pool **out);
/* Close every idle connection and free the pool; safe on NULL. */
void milter_pool_free(struct milter_pool *p);

/*
 * Send req and wait for its answer in *res (free with dkc_result_free()).
 * A non-OK answer is not an error.  Errors: DK_ERR_UNAVAILABLE (daemon not
 * running or the connection broke), DK_ERR_TIMEOUT, DK_ERR_TOO_LARGE (the
 * request does not fit in a frame), DK_ERR_PROTO, DK_ERR_NOMEM; the
 * thread's dk_err_detail() says more.
 */
int milter_pool_sign(struct milter_pool *p, const struct dkc_sign_req *req, struct dkc_result *res);

#endif /* MILTER_POOL_H */
