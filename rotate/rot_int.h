/*
 * rot_int.h - what the files of rotate/ share: the keys of a domain as
 * read from its tokens, rings, and the moves every transition is made of.
 */
#ifndef ROT_INT_H
#define ROT_INT_H

#include <stddef.h>

#include "rotate/publish.h"
#include "rotate/rotate.h"

#define ROT_KEYS_MAX 4096 /* keys of one domain we handle */

/* A key and the token it was read from; a destroyed key has state "". */
struct rot_key {
	struct hsm_key k;
	struct rot_tok *tok;
};

struct rot_keys {
	struct rot_key *v;
	size_t n;
};

/* The keys of one domain, algorithm and slot, on the slot's token. */
struct rot_ring {
	const struct dk_conf_domain *ds;
	const char *alg;     /* "rsa-sha256" | "ed25519-sha256" */
	const char *slot;    /* "primary" | "backup" */
	const char *signing; /* the state that signs: "active" | "standby" */
	struct rot_tok *tok;
	int configured; /* alg is in algorithms= */
};

/* ---- rot_keys.c ---- */

/* The [token name] of c, or NULL. */
struct rot_tok *rot_tok_find(struct rot_ctx *c, const char *name);
/* Free the key listings rot_step kept in c->toks. */
void rot_toks_forget(struct rot_ctx *c);
/*
 * The keys of ds from its primary and backup tokens (the available ones);
 * *missing gets 1 for each of them that has no session.
 */
int rot_keys_load(struct rot_ctx *c, const struct dk_conf_domain *ds, struct rot_keys *out);
void rot_keys_free(struct rot_keys *ks);
/*
 * Is k's key pair gone: a tombstone (state "destroyed"), or a record whose
 * private key is missing (a destruction cut short)?  Such keys are in no
 * ring; the step finishes and then forgets them (rotate.c).
 */
int rot_key_gone(const struct rot_key *k);
/* Is k one of rg's keys? */
int rot_in_ring(const struct rot_ring *rg, const struct rot_key *k);
/* Fill rg for ds, alg and slot ("primary" | "backup"). */
void rot_ring_init(struct rot_ctx *c, struct rot_ring *rg, const struct dk_conf_domain *ds,
    const char *alg, const char *slot);
/* Is the selector of k used by another key of ks that is not revoked? */
int rot_selector_shared(const struct rot_keys *ks, const struct rot_key *k);

/* Report an event about key k (k may be NULL: the ring) to c->report. */
void rot_report(struct rot_ctx *c, enum rot_level lv, const char *event, const struct rot_ring *rg,
    const struct rot_key *k, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/*
 * Rewrite k's record with state, pushed and seen (changed = now when the
 * state changes), after reading it again from the token: DK_ERR_EXISTS
 * when another process changed it since it was read (nothing done).
 */
int rot_key_move(
    struct rot_ctx *c, struct rot_key *k, const char *state, int64_t pushed, int64_t seen);
/*
 * Destroy k's key pair in the token after reading it again (DK_ERR_EXISTS
 * as above); its record stays as a tombstone (state "destroyed").
 */
int rot_key_destroy(struct rot_ctx *c, struct rot_key *k);
/* Remove the tombstone k from the token (after reading it again). */
int rot_key_forget(struct rot_ctx *c, struct rot_key *k);
/* The TXT name and value of k (revoked: the p= value). */
int rot_key_record(const struct rot_key *k, int revoked, struct dk_buf *name, struct dk_buf *value);
/*
 * Generate a pending key for rg named selector (NULL: from the template,
 * unique among ks) and append it to ks; *idx is its index.  The new key
 * passes the daemon's hygiene check or is destroyed.
 */
int rot_key_generate(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks,
    const char *selector, const char *replaces, size_t *idx);

/* ---- rotate.c ---- */

/*
 * Look k's record up and compare it with what k should publish:
 * *shown = 1 when DNS serves exactly that record.
 */
int rot_dns_shows(struct rot_ctx *c, const struct rot_key *k, int *shown);
/* Publish k's record (act), reporting a failure as a stall. */
int rot_push(struct rot_ctx *c, const struct rot_ring *rg, const struct rot_keys *ks,
    struct rot_key *k, enum rot_pub act);
/* The moves of the step and of rot_manual. */
int rot_activate(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks,
    struct rot_key *k, const char *why);
int rot_retire(struct rot_ctx *c, const struct rot_ring *rg, struct rot_key *k, const char *why);
int rot_revoke(
    struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks, struct rot_key *k);
int rot_destroy(
    struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks, struct rot_key *k);
#define ROT_SETTLE_SLACK 2 /* seconds beyond two step intervals: see rot_settled */
/*
 * Has every daemon had a step (a rings reload) since k last changed state?
 * A retired key is revoked only then: a daemon that has not reloaded yet
 * may still sign with it, and its record must still verify.
 */
int rot_settled(const struct rot_ctx *c, const struct rot_key *k);
/* The newest key of rg in state (by changed, as dkd_keyset picks), or NULL. */
struct rot_key *rot_ring_newest(const struct rot_ring *rg, struct rot_keys *ks, const char *state);
/* Start a rotation in rg: a new pending key replacing cur, published at once. */
int rot_ring_begin(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks,
    const struct rot_key *cur, const char *selector, const char *why);

#endif /* ROT_INT_H */
