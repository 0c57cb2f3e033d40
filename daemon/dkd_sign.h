/*
 * dkd_sign.h - what a worker does with a job: parse the header section,
 * find the domain and check the caller may sign for it, then for each
 * algorithm build the DKIM-Signature, have the token sign its digest, and
 * fail over to the standby key when the primary token fails.
 */
#ifndef DKD_SIGN_H
#define DKD_SIGN_H

#include <stdatomic.h>

#include "daemon/dkd_job.h"
#include "daemon/dkd_tokens.h"

/* A worker's own PKCS#11 sessions, one per token, opened on first use. */
struct dkd_sessions {
	struct dkd_tokens *tokens;
	struct hsm_session **s;
	unsigned *gen; /* token generation each session was opened in */
	/* Set while the worker is inside a token call; read by the watchdog. */
	_Atomic(struct dkd_token *) busy_tok;
	atomic_ullong busy_since_us; /* dk_now_us() at entry, 0 when not in a call */
};

int dkd_sessions_init(struct dkd_sessions *ss, struct dkd_tokens *tokens);
void dkd_sessions_close(struct dkd_sessions *ss);

/* Run one job to completion, filling its "out" part; never fails itself. */
void dkd_sign_run(struct dkd_sessions *ss, struct dkd_job *job);

#endif /* DKD_SIGN_H */
