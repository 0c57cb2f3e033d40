/*
 * dkd_keyset.c - building and swapping key ring snapshots.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "daemon/dkd_keyset.h"

static pthread_mutex_t keyset_lock = PTHREAD_MUTEX_INITIALIZER; /* protects keyset_current */
static struct dkd_keyset *keyset_current;

static void
keyset_free(struct dkd_keyset *ks)
{
	if (ks == NULL)
		return;
	dk_conf_free(ks->conf);
	free(ks->keys);
	free(ks->rings);
	free(ks->ring_of);
	free(ks->allows);
	free(ks);
}

/* Append the usable dkimkeep keys of one token to ks->keys. */
static int
keyset_load_token(struct dkd_keyset *ks, struct dkd_token *tok, size_t *cap)
{
	struct hsm_session *s = NULL;
	struct hsm_key *list = NULL;
	struct dkd_key *k, *nv;
	char why[256];
	size_t i, n = 0;
	int r, weak;

	if (!atomic_load(&tok->up))
		return 0;
	if ((r = hsm_session_open(tok->token, &s)) != 0 || (r = hsm_key_list(s, &list, &n)) != 0) {
		dkd_token_down(tok, r, dk_err_detail());
		r = 0;
		goto out;
	}
	for (i = 0; i < n; i++) {
		weak = 0;
		why[0] = '\0';
		if (strcmp(list[i].meta.state, "active") != 0 &&
		    strcmp(list[i].meta.state, "standby") != 0)
			continue; /* only signing keys are checked and kept */
		r = hsm_key_check(s, &list[i], &weak, why, sizeof(why));
		if (r == DK_ERR_KEY_HYGIENE || r == DK_ERR_PARSE) /* a stale view? look again */
			r = hsm_key_recheck(s, &list[i], &weak, why, sizeof(why));
		if (r != 0) {
			if (r == DK_ERR_TOKEN_FAILING) {
				dkd_token_down(tok, r, dk_err_detail());
				r = 0;
				goto out;
			}
			dk_log_err("key %s (selector %s, domain %s) on token \"%s\" is never used "
			           "to sign: %s",
			    list[i].id_hex, list[i].meta.selector, list[i].meta.domain, tok->name,
			    why[0] ? why : dk_strerror(r));
			continue;
		}
		if (weak)
			dk_log_warn("key %s (selector %s, domain %s) is RSA-%u: weaker than 2048 "
			            "bits; rotate it to a larger key (dkimkeep key rotate)",
			    list[i].id_hex, list[i].meta.selector, list[i].meta.domain,
			    list[i].bits);
		if (ks->nkeys == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			if ((nv = realloc(ks->keys, *cap * sizeof(*nv))) == NULL) {
				r = DK_ERR_NOMEM;
				goto out;
			}
			ks->keys = nv;
		}
		k = &ks->keys[ks->nkeys++];
		k->hk = list[i];
		k->tok = tok;
		k->weak = weak;
	}
	r = 0;
out:
	free(list);
	if (s != NULL)
		hsm_session_close(s);
	return r;
}

/* The newest key of domain/alg in the given state and slot, on tok. */
static const struct dkd_key *
keyset_pick(const struct dkd_keyset *ks, const char *domain, enum dkim_alg alg,
    const struct dkd_token *tok, const char *slot, const char *state)
{
	const struct dkd_key *best = NULL, *k;
	size_t i;

	for (i = 0; i < ks->nkeys; i++) {
		k = &ks->keys[i];
		if (k->tok != tok || strcmp(k->hk.meta.domain, domain) != 0 ||
		    strcmp(k->hk.meta.alg, dkim_alg_name(alg)) != 0 ||
		    strcmp(k->hk.meta.slot, slot) != 0 || strcmp(k->hk.meta.state, state) != 0)
			continue;
		/* Two active keys (a crash mid-rotation): the newest activation wins. */
		if (best == NULL || k->hk.meta.changed > best->hk.meta.changed)
			best = k;
	}
	return best;
}

/* Rings told about one by one at a load; the rest are counted in one line. */
#define KEYSET_WARN_RINGS 10

/*
 * What is missing from a ring, or that its token is down (its keys were not
 * read): the number of problems (a missing active key, a missing standby),
 * each logged when say is set.
 */
static int
keyset_warn_ring(const struct dkd_ring *ring, const struct dk_conf_domain *d,
    const struct dkd_token *prim, const struct dkd_token *back, int say)
{
	const char *alg = dkim_alg_name(ring->alg);
	int n = (ring->active == NULL) + (ring->standby == NULL);

	if (!say)
		return n;
	if (ring->active == NULL && prim != NULL && !atomic_load(&prim->up))
		dk_log_warn("domain %s: the primary token \"%s\" is down, its %s key is not "
		            "loaded; %s until it is back",
		    d->name, d->primary, alg,
		    ring->standby != NULL ? "the standby key signs" : "nothing can sign");
	else if (ring->active == NULL)
		dk_log_warn("domain %s has no active %s key on token \"%s\": run \"dkimkeep "
		            "key generate --domain %s --alg %s --activate\"",
		    d->name, alg, d->primary, d->name, alg);
	if (ring->standby == NULL && back != NULL && !atomic_load(&back->up))
		dk_log_warn("domain %s: the backup token \"%s\" is down, its standby %s key is "
		            "not loaded",
		    d->name, d->backup, alg);
	else if (ring->standby == NULL)
		dk_log_warn("domain %s has no standby %s key%s%s: a failing primary token stops "
		            "its mail; run \"dkimkeep key generate --domain %s --alg %s --slot "
		            "backup\"",
		    d->name, alg, d->backup ? " on token " : "", d->backup ? d->backup : "",
		    d->name, alg);
	return n;
}

static int
keyset_build_rings(struct dkd_keyset *ks, struct dkd_tokens *tokens)
{
	const struct dk_conf_domain *d;
	struct dkd_ring *ring;
	struct dkd_token *prim, *back;
	size_t i, told = 0, untold = 0;
	int a;

	if ((ks->rings = calloc(ks->conf->ndomains * 2 + 1, sizeof(*ks->rings))) == NULL ||
	    (ks->ring_of = calloc(ks->conf->ndomains * 2 + 1, sizeof(*ks->ring_of))) == NULL)
		return DK_ERR_NOMEM;
	for (i = 0; i < ks->conf->ndomains; i++) {
		d = &ks->conf->domains[i];
		prim = dkd_tokens_find(tokens, d->primary);
		back = d->backup != NULL ? dkd_tokens_find(tokens, d->backup) : NULL;
		for (a = DKIM_ALG_RSA_SHA256; a <= DKIM_ALG_ED25519_SHA256; a++) {
			if (!(d->algs & (1u << a)))
				continue;
			ring = &ks->rings[ks->nrings++];
			ks->ring_of[i * 2 + (size_t)(a - DKIM_ALG_RSA_SHA256)] = ring;
			ring->dom = d;
			ring->alg = (enum dkim_alg)a;
			ring->active = prim != NULL ? keyset_pick(ks, d->name, ring->alg, prim,
			                                  "primary", "active")
			                            : NULL;
			ring->standby = back != NULL ? keyset_pick(ks, d->name, ring->alg, back,
			                                   "backup", "standby")
			                             : NULL;
			/* 1,000 domains without standby keys: not 1,000 lines per load. */
			if (keyset_warn_ring(ring, d, prim, back, told < KEYSET_WARN_RINGS) > 0 &&
			    told++ >= KEYSET_WARN_RINGS)
				untold++;
		}
	}
	if (untold > 0)
		dk_log_warn("%zu more key rings have missing or unloaded keys (only the first %d "
		            "are told above): see \"dkimkeep status\" and \"dkimkeep key list\"",
		    untold, KEYSET_WARN_RINGS);
	return 0;
}

/* Each client's domains= matched once against every configured domain, not per request. */
static int
keyset_build_allows(struct dkd_keyset *ks)
{
	const struct dk_conf *c = ks->conf;
	size_t i, j;

	ks->allows_stride = (c->ndomains + 7) / 8;
	if ((ks->allows = calloc(c->nclients * ks->allows_stride + 1, 1)) == NULL)
		return DK_ERR_NOMEM;
	for (i = 0; i < c->nclients; i++) {
		for (j = 0; j < c->ndomains; j++) {
			if (dk_conf_client_allows(&c->clients[i], c->domains[j].name))
				ks->allows[i * ks->allows_stride + j / 8] |=
				    (uint8_t)(1u << (j % 8));
		}
	}
	return 0;
}

int
dkd_keyset_load(struct dk_conf *conf, struct dkd_tokens *tokens, struct dkd_keyset **out)
{
	struct dkd_keyset *ks;
	size_t i, cap = 0;
	int r;

	*out = NULL;
	if ((ks = calloc(1, sizeof(*ks))) == NULL) {
		dk_conf_free(conf);
		return DK_ERR_NOMEM;
	}
	ks->conf = conf;
	atomic_init(&ks->refs, 1);
	for (i = 0; i < tokens->n; i++) {
		if ((r = keyset_load_token(ks, &tokens->v[i], &cap)) != 0)
			goto out;
	}
	if ((r = keyset_build_rings(ks, tokens)) != 0 || (r = keyset_build_allows(ks)) != 0)
		goto out;
	*out = ks;
	ks = NULL;
	r = 0;
out:
	keyset_free(ks);
	return r;
}

void
dkd_keyset_publish(struct dkd_keyset *ks)
{
	struct dkd_keyset *old;

	pthread_mutex_lock(&keyset_lock);
	old = keyset_current;
	keyset_current = ks;
	pthread_mutex_unlock(&keyset_lock);
	dkd_keyset_release(old);
}

struct dkd_keyset *
dkd_keyset_acquire(void)
{
	struct dkd_keyset *ks;

	pthread_mutex_lock(&keyset_lock);
	ks = keyset_current;
	if (ks != NULL)
		atomic_fetch_add(&ks->refs, 1);
	pthread_mutex_unlock(&keyset_lock);
	return ks;
}

void
dkd_keyset_release(struct dkd_keyset *ks)
{
	if (ks != NULL && atomic_fetch_sub(&ks->refs, 1) == 1)
		keyset_free(ks);
}

const struct dkd_ring *
dkd_keyset_ring(const struct dkd_keyset *ks, const struct dk_conf_domain *dom, enum dkim_alg alg)
{
	const struct dk_conf *c = ks->conf;
	size_t i;

	if (dom < c->domains || dom >= c->domains + c->ndomains || alg < DKIM_ALG_RSA_SHA256 ||
	    alg > DKIM_ALG_ED25519_SHA256)
		return NULL;
	i = (size_t)(dom - c->domains);
	return ks->ring_of[i * 2 + (size_t)(alg - DKIM_ALG_RSA_SHA256)];
}

int
dkd_keyset_allows(
    const struct dkd_keyset *ks, const struct dk_conf_client *cl, const struct dk_conf_domain *dom)
{
	const struct dk_conf *c = ks->conf;
	size_t i, j;

	if (cl < c->clients || cl >= c->clients + c->nclients || dom < c->domains ||
	    dom >= c->domains + c->ndomains)
		return dk_conf_client_allows(cl, dom->name); /* not of this snapshot */
	i = (size_t)(cl - c->clients);
	j = (size_t)(dom - c->domains);
	return (ks->allows[i * ks->allows_stride + j / 8] >> (j % 8)) & 1;
}

const struct dkd_key *
dkd_keyset_selector(const struct dkd_keyset *ks, const char *domain, const char *selector)
{
	size_t i;

	for (i = 0; i < ks->nkeys; i++) {
		if (strcmp(ks->keys[i].hk.meta.domain, domain) == 0 &&
		    strcmp(ks->keys[i].hk.meta.selector, selector) == 0)
			return &ks->keys[i];
	}
	return NULL;
}
