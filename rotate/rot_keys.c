/*
 * rot_keys.c - the keys of a domain in its tokens, and the moves made of
 * them: every move reads the key again from the token first, so that a
 * second daemon or an operator who moved it already is never undone.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "rotate/rot_int.h"
#include "rotate/rot_record.h"

#define TEXT_MAX          1024
#define WHY_MAX           512
#define GENERATE_TRIES    3          /* generate_checked: a failing token is tried again */
#define GENERATE_PAUSE_NS 300000000L /* between the tries */

struct rot_tok *
rot_tok_find(struct rot_ctx *c, const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < c->ntoks; i++) {
		if (strcmp(c->toks[i].name, name) == 0)
			return &c->toks[i];
	}
	return NULL;
}

/* FNV-1a over what a reload depends on. */
static void
digest_add(uint64_t *d, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		*d ^= b[i];
		*d *= 0x100000001b3ull;
	}
}

/*
 * The token's keys.  Within rot_step (c->step) one listing serves every
 * domain: three C_FindObjects per token per step, not per domain, so 1,000
 * domains do not cost 3,000 searches a step.  A domain's keys are moved
 * only by that domain's step, and each move reads its key again first.
 */
static int
keys_of(struct rot_ctx *c, struct rot_tok *tok, struct hsm_key **list, size_t *n, int *owned)
{
	int r;

	*owned = !c->step;
	if (!c->step)
		return hsm_key_list_all(tok->s, list, n);
	if (!tok->listed) {
		if ((r = hsm_key_list_all(tok->s, &tok->keys, &tok->nkeys)) != 0)
			return r;
		tok->listed = 1;
	}
	*list = tok->keys;
	*n = tok->nkeys;
	return 0;
}

void
rot_toks_forget(struct rot_ctx *c)
{
	size_t i;

	for (i = 0; i < c->ntoks; i++) {
		free(c->toks[i].keys);
		c->toks[i].keys = NULL;
		c->toks[i].nkeys = 0;
		c->toks[i].listed = 0;
	}
}

static int
keys_append(struct rot_ctx *c, struct rot_keys *ks, struct rot_tok *tok, const char *domain)
{
	struct hsm_key *list = NULL;
	struct rot_key *nv;
	size_t n = 0, i;
	int r, owned;

	if ((r = keys_of(c, tok, &list, &n, &owned)) != 0)
		return r;
	if (ks->n + n > ROT_KEYS_MAX) {
		r = dk_err_set(DK_ERR_TOO_LARGE, "token \"%s\" holds more than %d keys", tok->name,
		    ROT_KEYS_MAX);
		goto out;
	}
	if ((nv = reallocarray(ks->v, ks->n + n + 1, sizeof(*nv))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	ks->v = nv;
	for (i = 0; i < n; i++) {
		if (strcasecmp(list[i].meta.domain, domain) != 0)
			continue;
		ks->v[ks->n].k = list[i];
		ks->v[ks->n].tok = tok;
		ks->n++;
		digest_add(&c->digest, tok->name, strlen(tok->name));
		digest_add(&c->digest, list[i].id, sizeof(list[i].id));
		digest_add(&c->digest, list[i].meta.state, strlen(list[i].meta.state));
		digest_add(&c->digest, &list[i].meta.changed, sizeof(list[i].meta.changed));
	}
	r = 0;
out:
	if (owned)
		free(list);
	return r;
}

int
rot_keys_load(struct rot_ctx *c, const struct dk_conf_domain *ds, struct rot_keys *out)
{
	const char *names[2] = {ds->primary, ds->backup};
	struct rot_tok *tok;
	int i, r;

	out->v = NULL;
	out->n = 0;
	for (i = 0; i < 2; i++) {
		if (names[i] == NULL || (i == 1 && strcmp(names[0], names[1]) == 0))
			continue;
		if ((tok = rot_tok_find(c, names[i])) == NULL || tok->s == NULL)
			continue; /* reported by the rings of that token */
		if ((r = keys_append(c, out, tok, ds->name)) != 0)
			return r;
	}
	return 0;
}

void
rot_keys_free(struct rot_keys *ks)
{
	free(ks->v);
	ks->v = NULL;
	ks->n = 0;
}

int
rot_key_gone(const struct rot_key *k)
{
	return k->k.meta.state[0] == '\0' || strcmp(k->k.meta.state, "destroyed") == 0 ||
	       k->k.priv == 0;
}

int
rot_in_ring(const struct rot_ring *rg, const struct rot_key *k)
{
	return k->tok == rg->tok && !rot_key_gone(k) && strcmp(k->k.meta.alg, rg->alg) == 0 &&
	       strcmp(k->k.meta.slot, rg->slot) == 0;
}

void
rot_ring_init(struct rot_ctx *c, struct rot_ring *rg, const struct dk_conf_domain *ds,
    const char *alg, const char *slot)
{
	unsigned bit =
	    strcmp(alg, "rsa-sha256") == 0 ? DK_CONF_ALG_RSA_SHA256 : DK_CONF_ALG_ED25519_SHA256;

	memset(rg, 0, sizeof(*rg));
	rg->ds = ds;
	rg->alg = alg;
	rg->slot = slot;
	rg->signing = strcmp(slot, "primary") == 0 ? "active" : "standby";
	rg->tok = rot_tok_find(c, strcmp(slot, "primary") == 0 ? ds->primary : ds->backup);
	rg->configured = (ds->algs & bit) != 0;
}

int
rot_selector_shared(const struct rot_keys *ks, const struct rot_key *k)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		const struct hsm_key_meta *m = &ks->v[i].k.meta;

		if (&ks->v[i] == k || rot_key_gone(&ks->v[i]) || strcmp(m->state, "revoked") == 0)
			continue;
		if (strcasecmp(m->selector, k->k.meta.selector) == 0)
			return 1;
	}
	return 0;
}

void
rot_report(struct rot_ctx *c, enum rot_level lv, const char *event, const struct rot_ring *rg,
    const struct rot_key *k, const char *value, const char *fmt, ...)
{
	struct rot_event ev;
	char text[TEXT_MAX], name[ROT_REC_NAME_MAX + 1];
	va_list ap;

	if (lv >= ROT_WARN)
		c->stalled++;
	if (c->report == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	memset(&ev, 0, sizeof(ev));
	ev.event = event;
	ev.level = lv;
	ev.domain = rg->ds->name;
	ev.alg = k != NULL ? k->k.meta.alg : rg->alg;
	ev.slot = k != NULL ? k->k.meta.slot : rg->slot;
	ev.selector = k != NULL ? k->k.meta.selector : "";
	ev.state = k != NULL ? (k->k.meta.state[0] ? k->k.meta.state : "destroyed") : "";
	ev.token = k != NULL ? k->tok->name : (rg->tok != NULL ? rg->tok->name : "");
	name[0] = '\0';
	if (k != NULL)
		snprintf(
		    name, sizeof(name), "%s._domainkey.%s", k->k.meta.selector, k->k.meta.domain);
	ev.name = name;
	ev.value = value;
	ev.time = c->now;
	ev.text = text;
	c->report(&ev, c->arg);
}

/* Read k again from its token: DK_ERR_EXISTS when its record changed since. */
static int
key_fresh(struct rot_key *k, struct hsm_key *now)
{
	struct hsm_key *list = NULL;
	size_t n = 0, i;
	int r;

	if ((r = hsm_key_list_all(k->tok->s, &list, &n)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		if (memcmp(list[i].id, k->k.id, HSM_KEY_ID_LEN) == 0)
			break;
	}
	if (i == n)
		r = dk_err_set(DK_ERR_EXISTS, "key %s (%s) is gone from token \"%s\"", k->k.id_hex,
		    k->k.meta.selector, k->tok->name);
	else if (strcmp(list[i].meta.state, k->k.meta.state) != 0 ||
	         list[i].meta.changed != k->k.meta.changed ||
	         list[i].meta.pushed != k->k.meta.pushed || list[i].meta.seen != k->k.meta.seen)
		r = dk_err_set(DK_ERR_EXISTS,
		    "key %s (%s) was changed in token \"%s\" by another process (now %s)",
		    k->k.id_hex, k->k.meta.selector, k->tok->name, list[i].meta.state);
	else
		*now = list[i];
	free(list);
	return r;
}

int
rot_key_move(struct rot_ctx *c, struct rot_key *k, const char *state, int64_t pushed, int64_t seen)
{
	struct hsm_key fresh;
	struct hsm_key_meta m;
	int64_t now;
	int r;

	if ((r = key_fresh(k, &fresh)) != 0)
		return r;
	m = fresh.meta;
	if (strcmp(m.state, state) != 0) {
		snprintf(m.state, sizeof(m.state), "%s", state);
		/*
		 * The time of this write, not of the step's start (a step may run
		 * for seconds before it gets here): rot_settled counts from it.
		 * Strictly later than before: the newest activation is the one
		 * that signs.
		 */
		now = time(NULL) > c->now ? (int64_t)time(NULL) : c->now;
		m.changed = now > m.changed ? now : m.changed + 1;
	}
	m.pushed = pushed;
	m.seen = seen;
	if ((r = hsm_key_set_meta(k->tok->s, &fresh, &m)) != 0)
		return r;
	k->k = fresh;
	c->moves++;
	return 0;
}

int
rot_key_destroy(struct rot_ctx *c, struct rot_key *k)
{
	struct hsm_key fresh;
	int r;

	if ((r = key_fresh(k, &fresh)) != 0)
		return r;
	/* The record stays as a tombstone until DNS no longer serves the key's name. */
	r = hsm_key_destroy(k->tok->s, &fresh, 1);
	if (strcmp(fresh.meta.state, k->k.meta.state) != 0)
		c->moves++;
	k->k = fresh;
	return r;
}

int
rot_key_forget(struct rot_ctx *c, struct rot_key *k)
{
	struct hsm_key fresh;
	int r;

	if ((r = key_fresh(k, &fresh)) != 0)
		return r;
	if ((r = hsm_key_destroy(k->tok->s, &fresh, 0)) != 0)
		return r;
	k->k.meta.state[0] = '\0';
	c->moves++;
	return 0;
}

int
rot_key_record(const struct rot_key *k, int revoked, struct dk_buf *name, struct dk_buf *value)
{
	int r;

	if ((r = rot_rec_name(&k->k.meta, name)) != 0)
		return r;
	return rot_rec_value(k->tok->s, &k->k, revoked, value);
}

static int
selector_taken(const struct rot_keys *ks, const char *selector)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		const struct hsm_key_meta *m = &ks->v[i].k.meta;

		if (m->state[0] == '\0')
			continue;
		/* A selector that a live key replaced may still be cached as revoked. */
		if (strcasecmp(m->selector, selector) == 0 ||
		    strcasecmp(m->replaces, selector) == 0)
			return 1;
	}
	return 0;
}

/* The selector given, or a fresh one from selector_template (suffix b, c, ... when taken). */
static int
new_selector(const struct rot_ctx *c, const struct rot_ring *rg, const struct rot_keys *ks,
    const char *given, char *out, size_t outlen)
{
	const char *tmpl =
	    rg->ds->selector_template != NULL ? rg->ds->selector_template : "s{date:%Y%m}-{alg}";
	const char *word = strcmp(rg->alg, "rsa-sha256") == 0 ? "rsa" : "ed25519";
	char suffix[2] = {0, 0};
	int r;

	if (given != NULL) {
		if (strlen(given) >= outlen)
			return dk_err_set(DK_ERR_USAGE, "selector \"%s\" is over %zu characters",
			    given, outlen - 1);
		if (selector_taken(ks, given))
			return dk_err_set(DK_ERR_EXISTS,
			    "selector %s of %s is taken by another key; choose another", given,
			    rg->ds->name);
		snprintf(out, outlen, "%s", given);
		return 0;
	}
	for (;;) {
		if ((r = rot_selector_expand(tmpl, word, c->now, suffix, out, outlen)) != 0)
			return r;
		if (!selector_taken(ks, out))
			return 0;
		suffix[0] = suffix[0] == 0 ? 'b' : (char)(suffix[0] + 1);
		if (suffix[0] > 'z')
			return dk_err_set(DK_ERR_EXISTS,
			    "every selector from \"%s\" is taken this period for %s; give one with "
			    "--selector",
			    tmpl, rg->ds->name);
	}
}

/* Make the key and check it as dkimkeepd will; a key that fails is destroyed. */
static int
generate_once(struct rot_tok *tok, const struct hsm_key_meta *m, enum hsm_key_type type,
    unsigned bits, struct hsm_key *out)
{
	char why[WHY_MAX], detail[WHY_MAX];
	int r, weak = 0;

	if ((r = hsm_key_generate(tok->s, type, bits, m, out)) != 0)
		return r;
	/*
	 * A key just made that reads back wrong (not sensitive, an empty modulus:
	 * both seen with daemons writing the same SoftHSM token) is looked at
	 * again on a fresh listing before it is given up.
	 */
	r = hsm_key_check(tok->s, out, &weak, why, sizeof(why));
	if (r != 0 && r != DK_ERR_NOMEM)
		r = hsm_key_recheck(tok->s, out, &weak, why, sizeof(why));
	if (r != 0) {
		snprintf(detail, sizeof(detail), "%s", why[0] ? why : dk_err_detail());
		if (hsm_key_destroy(tok->s, out, 0) != 0)
			dk_log_warn("the refused key could not be destroyed: %s", dk_err_detail());
		return dk_err_set(r, "the new key fails the check and was destroyed: %s", detail);
	}
	return 0;
}

/*
 * SoftHSM, with other processes writing the token, sometimes loses sight of
 * an object this very process has just made: C_GenerateKeyPair fails with
 * CKR_FUNCTION_FAILED (it cleans up), or the new private key reads back not
 * sensitive and a fresh listing shows the key with 0 private key objects
 * (seen in CrashSafety and TwoDaemons; docs/rotation.md, "A stale view of
 * the token").  The process's view of the token is not re-read until
 * another process changes the token, so the key is destroyed and another
 * one made, up to GENERATE_TRIES times.  A token that really makes bad keys
 * fails every time and is reported.
 */
static int
generate_checked(struct rot_tok *tok, const struct hsm_key_meta *m, enum hsm_key_type type,
    unsigned bits, struct hsm_key *out)
{
	int r, tries;

	for (tries = 0;; tries++) {
		r = generate_once(tok, m, type, bits, out);
		if (r == 0 || r == DK_ERR_NOMEM || r == DK_ERR_INVALID ||
		    tries + 1 >= GENERATE_TRIES)
			break;
		dk_log_warn("%s; trying again", dk_err_detail());
		nanosleep(&(struct timespec){0, GENERATE_PAUSE_NS}, NULL);
	}
	return r;
}

int
rot_key_generate(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks,
    const char *selector, const char *replaces, size_t *idx)
{
	struct hsm_key_meta m;
	struct rot_key *nv;
	enum hsm_key_type type;
	unsigned bits;
	int r;

	if (ks->n + 1 > ROT_KEYS_MAX)
		return DK_ERR_TOO_LARGE;
	memset(&m, 0, sizeof(m));
	snprintf(m.domain, sizeof(m.domain), "%s", rg->ds->name);
	snprintf(m.alg, sizeof(m.alg), "%s", rg->alg);
	snprintf(m.slot, sizeof(m.slot), "%s", rg->slot);
	snprintf(m.state, sizeof(m.state), "pending");
	m.created = m.changed = c->now;
	if (replaces != NULL)
		snprintf(m.replaces, sizeof(m.replaces), "%s", replaces);
	if ((r = new_selector(c, rg, ks, selector, m.selector, sizeof(m.selector))) != 0)
		return r;
	type = strcmp(rg->alg, "rsa-sha256") == 0 ? HSM_KEY_RSA : HSM_KEY_ED25519;
	bits = type == HSM_KEY_RSA && rg->ds->rsa_bits > 0 ? (unsigned)rg->ds->rsa_bits : 2048;
	if ((nv = reallocarray(ks->v, ks->n + 2, sizeof(*nv))) == NULL)
		return DK_ERR_NOMEM;
	ks->v = nv;
	if ((r = generate_checked(rg->tok, &m, type, bits, &ks->v[ks->n].k)) != 0)
		return r;
	ks->v[ks->n].tok = rg->tok;
	*idx = ks->n++;
	c->moves++;
	return 0;
}
