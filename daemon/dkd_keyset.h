/*
 * dkd_keyset.h - the keys the daemon signs with: an immutable snapshot of
 * the config and of every domain's key ring (active key on the primary
 * token, standby key on the backup token), built from the tokens at start
 * and on reload, swapped atomically, and reference-counted so that a
 * worker signing with the old snapshot finishes undisturbed.
 */
#ifndef DKD_KEYSET_H
#define DKD_KEYSET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dk_config.h"
#include "daemon/dkd_tokens.h"
#include "dkim/dkim.h"
#include "hsm/hsm.h"

struct dkd_key {
	struct hsm_key hk;
	struct dkd_token *tok;
	int weak; /* RSA below 2048 bits: used, with a warning */
};

struct dkd_ring {
	const struct dk_conf_domain *dom;
	enum dkim_alg alg;
	const struct dkd_key *active;  /* primary slot, state active; or NULL */
	const struct dkd_key *standby; /* backup slot, state standby; or NULL */
};

struct dkd_keyset {
	atomic_int refs;
	struct dk_conf *conf; /* owned */
	struct dkd_key *keys;
	size_t nkeys;
	struct dkd_ring *rings;
	size_t nrings;
	/* Found in O(1) per request, whatever the number of domains (docs/performance.md): */
	const struct dkd_ring **ring_of; /* [domain index * 2 + alg - 1] of conf->domains */
	uint8_t *allows;                 /* per client, a bit per domain: may it sign for it */
	size_t allows_stride;            /* bytes per client */
};

/*
 * Build a keyset from conf (ownership taken, also on failure) and the keys
 * in tokens, checking every key's hygiene; keys that fail are logged by
 * name and left out.  Token sessions are opened and closed here: call it
 * from a thread that may block on the token, never from the event loop.
 */
int dkd_keyset_load(struct dk_conf *conf, struct dkd_tokens *tokens, struct dkd_keyset **out);

/* Make ks the current keyset (reference taken over); the old one is released. */
void dkd_keyset_publish(struct dkd_keyset *ks);
/* The current keyset with a reference held, or NULL before the first publish. */
struct dkd_keyset *dkd_keyset_acquire(void);
void dkd_keyset_release(struct dkd_keyset *ks);

/* The ring of a configured domain of ks->conf and an algorithm, or NULL. */
const struct dkd_ring *dkd_keyset_ring(
    const struct dkd_keyset *ks, const struct dk_conf_domain *dom, enum dkim_alg alg);
/* 1 when client cl of ks->conf may sign for dom of ks->conf (dk_conf_client_allows()). */
int dkd_keyset_allows(
    const struct dkd_keyset *ks, const struct dk_conf_client *cl, const struct dk_conf_domain *dom);
/* A signing-capable key (active or standby) of domain with this selector, or NULL. */
const struct dkd_key *dkd_keyset_selector(
    const struct dkd_keyset *ks, const char *domain, const char *selector);

#endif /* DKD_KEYSET_H */
