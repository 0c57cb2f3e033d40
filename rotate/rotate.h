/*
 * rotate.h - the key rotation state machine (docs/rotation.md), shared by
 * "dkimkeep key rotate|step|activate|retire|revoke|destroy" and by the
 * timer of dkimkeepd.
 *
 * A ring is the keys of one domain, algorithm and slot (primary: the key
 * in state "active" signs; backup: the key in state "standby").  A key
 * moves pending -> active|standby -> retiring -> revoked -> destroyed.
 * The state lives in the key's metadata object in the token, and every
 * move is one hsm_key_set_meta() (new record written before the old one
 * is removed), so a crash at any point leaves a ring whose signing key is
 * published, and the next step finishes the move.  Every move re-reads the
 * key from the token first and is skipped when another process (a second
 * daemon, an operator) has moved it already.
 */
#ifndef ROTATE_H
#define ROTATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/dk_config.h"
#include "hsm/hsm.h"

/* One configured token, opened by the caller, with a session for this thread. */
struct rot_tok {
	const char *name;      /* [token NAME] */
	struct hsm_session *s; /* NULL: the token is unavailable (reported, skipped) */
	int observe;           /* another process holds the rotation lease: read, never move */
	/* rot_step's: the token's keys, listed once per step for all domains. */
	struct hsm_key *keys;
	size_t nkeys;
	int listed;
};

enum rot_level {
	ROT_INFO = 0,   /* waiting for time or DNS, as planned */
	ROT_NOTICE = 1, /* a move was made, or the operator must publish something */
	ROT_WARN = 2,   /* a step could not proceed; retried at the next step */
	ROT_ALERT = 3,  /* it keeps not proceeding: someone must look */
};

/* What the report callback receives for every move, wait and failure. */
struct rot_event {
	const char *event; /* see docs/rotation.md: started, published, seen, activated, ... */
	enum rot_level level;
	const char *domain, *selector, *alg, *slot, *state; /* state after the event */
	const char *token;                                  /* [token NAME] */
	const char *name;                                   /* SELECTOR._domainkey.DOMAIN */
	const char *value; /* the TXT value to publish (manual publishing), or NULL */
	time_t time;
	const char *text; /* one line: what happened, what happens next or what to do */
};

/* Flags of struct rot_ctx. */
#define ROT_F_NO_START 0x1 /* advance rings, but start no new rotation */
#define ROT_F_FORCE    0x2 /* manual moves: skip the DNS check of activate, allow the last key */

struct rot_ctx {
	const struct dk_conf *conf;
	struct rot_tok *toks; /* every token the domains name */
	size_t ntoks;
	time_t now;           /* the time the step decides with */
	unsigned flags;       /* ROT_F_* */
	const char *resolver; /* lookups go here; NULL: [dns] resolver, or the system's */
	void (*report)(const struct rot_event *ev, void *arg);
	void *arg;
	/*
	 * Called (when set) right after a move that changes which key signs
	 * (an activation, a retirement), so that a daemon reloads its rings at
	 * once and not only at the end of a step that may still run for long.
	 */
	void (*signing_moved)(void *arg);
	void *moved_arg;
	/* Results, added up over the calls made with this context. */
	unsigned moves;   /* transitions made in the token */
	unsigned stalled; /* rings that could not proceed */
	uint64_t digest;  /* of every key seen (token, id, state, changed): a change means reload */
	int step;         /* inside rot_step: keys listed once per token (internal) */
};

/*
 * Advance every ring of domain (NULL: of every configured domain) as far
 * as time and DNS allow, starting the rotations that are due unless
 * ROT_F_NO_START.  A ring that cannot proceed (token down, DNS not
 * showing the record, an update refused) is reported and counted in
 * c->stalled, keeps its signing key, and is retried at the next step.
 * Returns 0, or an error that stopped the step itself (DK_ERR_NOMEM);
 * per-ring failures are reported, not returned.
 */
int rot_step(struct rot_ctx *c, const char *domain);

/*
 * Start a rotation now: a pending key for domain and alg (NULL: each of
 * the domain's algorithms) in slot ("primary" or "backup"), named
 * selector (NULL: from selector_template), published at once.
 * DK_ERR_EXISTS when that ring already has a pending key.
 */
int rot_start(
    struct rot_ctx *c, const char *domain, const char *alg, const char *slot, const char *selector);

enum rot_action {
	ROT_ACTIVATE = 1, /* pending or retiring -> active (standby on the backup slot) */
	ROT_RETIRE = 2,   /* active, standby or pending -> retiring */
	ROT_REVOKE = 3,   /* retiring or pending -> revoked, record replaced by p= */
	ROT_DESTROY = 4,  /* revoked -> record deleted, key destroyed in the token */
};

/*
 * One move by hand on the key of domain with selector, whatever the
 * times.  Refused (DK_ERR_INVALID, detail says why and what to do) when it
 * would leave a ring without a published signing key or skip a state;
 * ROT_F_FORCE allows activating a key DNS does not show yet and retiring
 * the last signing key.  DK_ERR_NOT_FOUND for an unknown selector.
 */
int rot_manual(struct rot_ctx *c, enum rot_action act, const char *domain, const char *selector);

/* "activate", "retire", ... */
const char *rot_action_name(enum rot_action act);

#endif /* ROTATE_H */
