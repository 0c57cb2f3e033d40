/*
 * dkd_loop.h - state owned by the event loop thread, shared by the loop's
 * modules (dkd_server.c, dkd_conn.c, dkd_status.c).  Nothing here is
 * touched by the workers except through dkd_pool.
 */
#ifndef DKD_LOOP_H
#define DKD_LOOP_H

#include <stdint.h>
#include <sys/types.h>

#include "daemon/dkd_outbox.h"
#include "daemon/dkd_pool.h"
#include "proto/dkimkeep.pb-c.h"
#include "daemon/dkd_tokens.h"

struct event_base;
struct evconnlistener;
struct event;

enum dkd_counter {
	DKD_CNT_OK,
	DKD_CNT_BAD_REQUEST,
	DKD_CNT_BAD_MESSAGE,
	DKD_CNT_NOT_AUTHORIZED,
	DKD_CNT_UNKNOWN_DOMAIN,
	DKD_CNT_NO_KEY,
	DKD_CNT_BUSY,
	DKD_CNT_RATE_LIMITED,
	DKD_CNT_TOKEN_UNAVAILABLE,
	DKD_CNT_AUDIT_UNAVAILABLE,
	DKD_CNT_INTERNAL,
	DKD_CNT_MAX
};

struct dkd_rate; /* per-client rate limiter state */
struct dkd_conn;

struct dkd_loop {
	struct event_base *base;
	struct evconnlistener *listener;
	struct dkd_pool *pool;
	struct dkd_outbox *outbox; /* finished jobs, filled by workers */
	struct dkd_tokens *tokens;
	struct event *done_ev; /* reads done_fd */
	int done_fd;           /* eventfd: workers write it when the outbox fills */
	const char *conf_path;
	int max_connections;
	int queue_max;
	int connections;
	int stopping;
	int64_t started;
	size_t jobs_out;         /* handed to the pool and not yet delivered */
	uint64_t last_out_us;    /* when the last job was handed to the pool */
	uint64_t last_answer_us; /* when the last answer was delivered */
	uint64_t counters[DKD_CNT_MAX];
	struct dkd_rate *rates; /* linked list, one per client name */
	struct dkd_conn *conns; /* every open connection */
};

/* Accept one connection (fd already accepted, non-blocking). */
void dkd_conn_accept(struct dkd_loop *lp, int fd);
/* Deliver finished jobs to their connections. */
void dkd_conn_deliver(struct dkd_loop *lp, struct dkd_job *list);
/* 1 when no request is in flight and every answer is written. */
int dkd_conn_all_idle(struct dkd_loop *lp);
/* Stop reading from every connection (shutdown). */
void dkd_conn_stop_reading(struct dkd_loop *lp);
/* Close every connection (exit). */
void dkd_conn_close_all(struct dkd_loop *lp);

/* Fill resp's status_info from the loop's view (dkd_status.c); free with dkd_status_clear(). */
int dkd_status_fill(struct dkd_loop *lp, Dkimkeep__V1__Response *resp);
void dkd_status_clear(Dkimkeep__V1__Response *resp);

#endif /* DKD_LOOP_H */
