/*
 * dkd_tokens.h - the daemon's tokens: opened and logged in once at start,
 * with an up/down state that signing, failover and the health check share.
 */
#ifndef DKD_TOKENS_H
#define DKD_TOKENS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dk_config.h"
#include "hsm/hsm.h"

struct dkd_token {
	char *name;   /* [token NAME] */
	char *label;  /* the token's label, for logs and status */
	size_t index; /* position in dkd_tokens.v: workers' session slot */
	struct hsm_module *module;
	/* NULL while the token was never found (down since start): set by a health check */
	struct hsm_token *_Atomic token;
	atomic_int up;          /* 1 while signing on it works */
	atomic_llong since;     /* UNIX time of the last up/down transition */
	atomic_ullong errors;   /* failures seen */
	atomic_int checking;    /* a health check thread is running */
	atomic_int op_told;     /* a dkd_token_err_needs_operator() error of a check was logged */
	atomic_uint generation; /* bumped on every down: workers reopen sessions */
	pthread_mutex_t lock;   /* protects last_error */
	char last_error[256];
};

struct dkd_tokens {
	struct dkd_token *v;
	size_t n;
	/*
	 * Set at exit when a helper thread (a rotation step, a health check, a
	 * reload) is still inside a token call after the bounded wait: the
	 * modules must then not be finalized under it, nor their libraries'
	 * destructors run; the daemon ends with _exit() instead.
	 */
	atomic_int abandoned;
};

/*
 * Open and log in to every token of the config.  A token that cannot be
 * opened is an error at start (the operator must see it), except that
 * allow_down keeps it, marked down, for the health check to retry.
 * A wrong PIN is always fatal and never retried.
 */
int dkd_tokens_open(const struct dk_conf *conf, int allow_down, struct dkd_tokens *out);
void dkd_tokens_close(struct dkd_tokens *t);
struct dkd_token *dkd_tokens_find(struct dkd_tokens *t, const char *name);

/*
 * 1 for an error no retry cures, which the operator must act on: a PIN the
 * token refused (tokens lock), a PIN file that cannot be read, a module
 * that does not load.
 */
int dkd_token_err_needs_operator(int err);
/*
 * For a health check of a down token: find it when it was never found
 * since start, and log in when it never was (one attempt; a PIN the token
 * refused is not tried again).
 */
int dkd_token_reopen(struct dkd_token *tok, const struct dk_conf_token *ct);
/* Mark a token down (first failure logs it) with the error that showed it. */
void dkd_token_down(struct dkd_token *tok, int err, const char *detail);
/* A down token's newest error, for status (nothing logged). */
void dkd_token_note(struct dkd_token *tok, int err, const char *detail);
/* Mark a token up again (logs the recovery). */
void dkd_token_up(struct dkd_token *tok);
/* Copy the last error text. */
void dkd_token_last_error(struct dkd_token *tok, char *buf, size_t len);

#endif /* DKD_TOKENS_H */
