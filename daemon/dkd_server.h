/*
 * dkd_server.h - the event loop: accepts callers on the Unix socket, reads
 * frames, checks who is calling (SO_PEERCRED), hands sign requests to the
 * worker pool and writes the answers back.  The loop thread never calls
 * into a token.
 */
#ifndef DKD_SERVER_H
#define DKD_SERVER_H

#include "daemon/dkd_tokens.h"

struct dkd_server_params {
	const char *conf_path;     /* reloaded on SIGHUP */
	struct dkd_tokens *tokens; /* opened and logged in */
	int listen_fd;             /* bound and listening */
	const char *socket_path;   /* unlinked at exit */
	int workers;
	int queue;
	int max_connections;
	int64_t health_interval; /* seconds */
	int64_t sign_timeout_ms; /* a token call slower than this fails over */
	void (*ready)(void *);   /* called once the loop runs (daemonizing) */
	void *ready_arg;
};

/* Run until SIGTERM/SIGINT; queued requests are answered before return. */
int dkd_server_run(const struct dkd_server_params *p);

#endif /* DKD_SERVER_H */
