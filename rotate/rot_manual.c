/*
 * rot_manual.c - rotations started by hand ("key rotate") and single
 * moves ("key activate|retire|revoke|destroy"), with the refusals that
 * keep every domain signable with a published key.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/dk_err.h"
#include "rotate/rot_int.h"

const char *
rot_action_name(enum rot_action act)
{
	switch (act) {
	case ROT_ACTIVATE:
		return "activate";
	case ROT_RETIRE:
		return "retire";
	case ROT_REVOKE:
		return "revoke";
	default:
		return "destroy";
	}
}

/* The [domain] section named exactly domain. */
static int
domain_find(const struct rot_ctx *c, const char *domain, const struct dk_conf_domain **out)
{
	size_t i;

	*out = NULL;
	for (i = 0; i < c->conf->ndomains; i++) {
		if (strcasecmp(c->conf->domains[i].name, domain) == 0) {
			*out = &c->conf->domains[i];
			return 0;
		}
	}
	return dk_err_set(DK_ERR_CONFIG,
	    "domain %s is not configured in %s: add a [domain %s] "
	    "section",
	    domain, c->conf->path, domain);
}

static int
ring_usable(const struct rot_ring *rg)
{
	if (rg->tok != NULL && rg->tok->s != NULL)
		return 0;
	return dk_err_set(
	    DK_ERR_UNAVAILABLE, "the %s token of %s is not available", rg->slot, rg->ds->name);
}

/* A pending key in rg, or NULL. */
static const struct rot_key *
ring_pending_key(const struct rot_ring *rg, const struct rot_keys *ks)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (rot_in_ring(rg, &ks->v[i]) && strcmp(ks->v[i].k.meta.state, "pending") == 0)
			return &ks->v[i];
	}
	return NULL;
}

static int
start_one(struct rot_ctx *c, const struct dk_conf_domain *ds, const char *alg, const char *slot,
    const char *selector, struct rot_keys *ks)
{
	const struct rot_key *p;
	struct rot_ring rg;
	int r;

	rot_ring_init(c, &rg, ds, alg, slot);
	if ((r = ring_usable(&rg)) != 0)
		return r;
	if (!rg.configured)
		return dk_err_set(DK_ERR_INVALID,
		    "%s is not in algorithms= of [domain %s]: add it there, and the next step "
		    "starts its keys",
		    alg, ds->name);
	if ((p = ring_pending_key(&rg, ks)) != NULL)
		return dk_err_set(DK_ERR_EXISTS,
		    "a rotation of the %s %s key of %s is already under way (pending key %s); "
		    "\"dkimkeep key step\" advances it, \"dkimkeep key retire\" cancels it",
		    slot, alg, ds->name, p->k.meta.selector);
	return rot_ring_begin(
	    c, &rg, ks, rot_ring_newest(&rg, ks, rg.signing), selector, "started by hand");
}

int
rot_start(
    struct rot_ctx *c, const char *domain, const char *alg, const char *slot, const char *selector)
{
	static const char *const algs[] = {"rsa-sha256", "ed25519-sha256"};
	const struct dk_conf_domain *ds;
	struct rot_keys ks = {NULL, 0};
	int a, r, started = 0;

	if ((r = domain_find(c, domain, &ds)) != 0)
		return r;
	if (strcmp(slot, "backup") == 0 && ds->backup == NULL)
		return dk_err_set(DK_ERR_CONFIG, "[domain %s] has no backup= token", ds->name);
	if ((r = rot_keys_load(c, ds, &ks)) != 0)
		goto out;
	for (a = 0; a < 2; a++) {
		if (alg != NULL ? strcmp(alg, algs[a]) != 0
		                : !(ds->algs & (a == 0 ? DK_CONF_ALG_RSA_SHA256
		                                       : DK_CONF_ALG_ED25519_SHA256)))
			continue;
		if ((r = start_one(c, ds, algs[a], slot, selector, &ks)) != 0)
			goto out;
		started++;
	}
	r = started > 0 ? 0
	                : dk_err_set(DK_ERR_USAGE, "--alg must be rsa-sha256 or ed25519-sha256");
out:
	rot_keys_free(&ks);
	return r;
}

/* The ring a key belongs to (its own token, whatever the config says now). */
static void
ring_of(struct rot_ctx *c, struct rot_ring *rg, const struct dk_conf_domain *ds,
    const struct rot_key *k)
{
	rot_ring_init(c, rg, ds, k->k.meta.alg, k->k.meta.slot);
	rg->tok = k->tok;
}

static int
others_signing(const struct rot_ring *rg, const struct rot_keys *ks, const struct rot_key *k)
{
	size_t i;
	int n = 0;

	for (i = 0; i < ks->n; i++) {
		if (&ks->v[i] != k && rot_in_ring(rg, &ks->v[i]) &&
		    strcmp(ks->v[i].k.meta.state, rg->signing) == 0)
			n++;
	}
	return n;
}

static int
manual_activate(
    struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks, struct rot_key *k)
{
	const char *st = k->k.meta.state;
	int r, shown = 0;

	if (strcmp(st, "pending") != 0 && strcmp(st, "retiring") != 0)
		return dk_err_set(DK_ERR_INVALID,
		    "key %s of %s is %s: only a pending or retiring key can be activated%s",
		    k->k.meta.selector, rg->ds->name, st,
		    strcmp(st, "revoked") == 0
		        ? " (a revoked key's record is p=; start a new key with \"key rotate\")"
		        : "");
	if (!(c->flags & ROT_F_FORCE)) {
		if ((r = rot_dns_shows(c, k, &shown)) != 0)
			return r;
		if (!shown)
			return dk_err_set(DK_ERR_INVALID,
			    "DNS does not serve the record of %s._domainkey.%s: verifiers would "
			    "fail "
			    "its signatures; publish it (\"dkimkeep key dns --domain %s\"), check "
			    "with \"dkimkeep dns check\", or give --force",
			    k->k.meta.selector, rg->ds->name, rg->ds->name);
	}
	return rot_activate(c, rg, ks, k, "activated by hand");
}

static int
manual_retire(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks, struct rot_key *k)
{
	const char *st = k->k.meta.state;

	if (strcmp(st, "revoked") == 0)
		return dk_err_set(DK_ERR_INVALID, "key %s of %s is already revoked",
		    k->k.meta.selector, rg->ds->name);
	if (strcmp(st, rg->signing) == 0 && others_signing(rg, ks, k) == 0 &&
	    !(c->flags & ROT_F_FORCE))
		return dk_err_set(DK_ERR_INVALID,
		    "key %s is the only %s %s key of %s: retiring it leaves the domain %s; start "
		    "a rotation first (\"dkimkeep key rotate --domain %s --alg %s\"), or give "
		    "--force",
		    k->k.meta.selector, rg->signing, rg->alg, rg->ds->name,
		    strcmp(rg->signing, "active") == 0 ? "unsigned" : "without a standby key",
		    rg->ds->name, rg->alg);
	return rot_retire(c, rg, k, "retired by hand");
}

int
rot_manual(struct rot_ctx *c, enum rot_action act, const char *domain, const char *selector)
{
	const struct dk_conf_domain *ds;
	struct rot_keys ks = {NULL, 0};
	struct rot_key *k = NULL;
	struct rot_ring rg;
	size_t i;
	int r;

	if ((r = domain_find(c, domain, &ds)) != 0)
		return r;
	if ((r = rot_keys_load(c, ds, &ks)) != 0)
		goto out;
	for (i = 0; i < ks.n && k == NULL; i++) {
		if (strcasecmp(ks.v[i].k.meta.selector, selector) == 0 && !rot_key_gone(&ks.v[i]))
			k = &ks.v[i];
	}
	for (i = 0; i < ks.n && k == NULL; i++) {
		if (strcasecmp(ks.v[i].k.meta.selector, selector) != 0)
			continue;
		r = act == ROT_DESTROY
		        ? 0
		        : dk_err_set(DK_ERR_INVALID, "key %s of %s is destroyed already", selector,
		              ds->name);
		goto out;
	}
	if (k == NULL) {
		r = dk_err_set(DK_ERR_NOT_FOUND,
		    "%s has no key with selector %s in its tokens; see \"dkimkeep key list "
		    "--domain %s\"",
		    ds->name, selector, ds->name);
		goto out;
	}
	ring_of(c, &rg, ds, k);
	switch (act) {
	case ROT_ACTIVATE:
		r = strcmp(k->k.meta.state, rg.signing) == 0 ? 0 : manual_activate(c, &rg, &ks, k);
		break;
	case ROT_RETIRE:
		r = strcmp(k->k.meta.state, "retiring") == 0 ? 0 : manual_retire(c, &rg, &ks, k);
		break;
	case ROT_REVOKE:
		if (strcmp(k->k.meta.state, "revoked") == 0)
			r = 0;
		else if (strcmp(k->k.meta.state, "retiring") != 0 &&
		         strcmp(k->k.meta.state, "pending") != 0)
			r = dk_err_set(DK_ERR_INVALID,
			    "key %s of %s is %s: retire it first (\"dkimkeep key retire\"), so "
			    "that "
			    "nothing signs with a key whose record says p=",
			    selector, ds->name, k->k.meta.state);
		else if (!rot_settled(c, k) && !(c->flags & ROT_F_FORCE))
			r = dk_err_set(DK_ERR_INVALID,
			    "key %s of %s changed state %lld s ago: a daemon that has not reloaded "
			    "its rings since (every step_interval) may still sign with it; revoke "
			    "it "
			    "after two step intervals, or give --force",
			    selector, ds->name, (long long)(c->now - k->k.meta.changed));
		else
			r = rot_revoke(c, &rg, &ks, k);
		break;
	default:
		if (strcmp(k->k.meta.state, "revoked") != 0)
			r = dk_err_set(DK_ERR_INVALID,
			    "key %s of %s is %s: only a revoked key is destroyed (\"dkimkeep key "
			    "retire\", then \"key revoke\")",
			    selector, ds->name, k->k.meta.state);
		else
			r = rot_destroy(c, &rg, &ks, k);
		break;
	}
out:
	rot_keys_free(&ks);
	return r;
}
