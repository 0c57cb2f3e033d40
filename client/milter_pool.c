/*
 * milter_pool.c - dkimkeep-milter: a small pool of daemon connections.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "client/milter_pool.h"
#include "common/dk_err.h"

struct milter_pool {
	char *socket_path;
	int timeout_ms;
	pthread_mutex_t lock; /* protects idle[] and nidle, nothing else */
	struct dkc_conn *idle[MILTER_POOL_IDLE_MAX];
	size_t nidle;
};

int
milter_pool_new(const char *socket_path, int timeout_ms, struct milter_pool **out)
{
	struct milter_pool *p;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return DK_ERR_NOMEM;
	if ((p->socket_path = strdup(socket_path)) == NULL ||
	    pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p->socket_path);
		free(p);
		return DK_ERR_NOMEM;
	}
	p->timeout_ms = timeout_ms;
	*out = p;
	return 0;
}

void
milter_pool_free(struct milter_pool *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nidle; i++)
		dkc_close(p->idle[i]);
	pthread_mutex_destroy(&p->lock);
	free(p->socket_path);
	free(p);
}

static struct dkc_conn *
pool_take(struct milter_pool *p)
{
	struct dkc_conn *c = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->nidle > 0)
		c = p->idle[--p->nidle];
	pthread_mutex_unlock(&p->lock);
	return c;
}

static void
pool_give(struct milter_pool *p, struct dkc_conn *c)
{
	pthread_mutex_lock(&p->lock);
	if (p->nidle < MILTER_POOL_IDLE_MAX) {
		p->idle[p->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	dkc_close(c);
}

/* Errors that leave the connection in a known state (nothing was sent). */
static int
conn_still_good(int r)
{
	return r == 0 || r == DK_ERR_TOO_LARGE || r == DK_ERR_INVALID;
}

int
milter_pool_sign(struct milter_pool *p, const struct dkc_sign_req *req, struct dkc_result *res)
{
	struct dkc_conn *c;
	int r, fresh = 0;

	memset(res, 0, sizeof(*res));
	dk_err_clear();
	if ((c = pool_take(p)) == NULL) {
		if ((r = dkc_connect(p->socket_path, p->timeout_ms, &c)) != 0)
			goto out;
		fresh = 1;
	}
	r = dkc_sign(c, req, res);
	if (r == DK_ERR_UNAVAILABLE && !fresh) {
		/* An idle connection the daemon closed (restart, reload): try a new one once. */
		dkc_close(c);
		c = NULL;
		dk_err_clear();
		if ((r = dkc_connect(p->socket_path, p->timeout_ms, &c)) != 0)
			goto out;
		r = dkc_sign(c, req, res);
	}
out:
	if (c != NULL && conn_still_good(r))
		pool_give(p, c);
	else
		dkc_close(c);
	return r;
}
