/*
 * rotate.c - the rotation step: each ring of each domain, as far as time
 * and DNS allow (docs/rotation.md has the timeline).
 *
 * The order of the moves keeps a published signing key at every instant:
 * a new key signs only once DNS has served its exact record for
 * publish_wait; it is made the signing key first (two signing keys: the
 * newest `changed` signs), and only then is the old one retired.  A record
 * is changed in DNS before the state that needs it is written (revoke:
 * p= first; destroy: the record is deleted first), so a crash between the
 * two is finished by the next step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/dk_err.h"
#include "common/dk_time.h"
#include "rotate/dns_query.h"
#include "rotate/rot_int.h"
#include "rotate/rot_record.h"

static const char *const rot_algs[] = {"rsa-sha256", "ed25519-sha256"};

static int
state_is(const struct rot_key *k, const char *state)
{
	return strcmp(k->k.meta.state, state) == 0;
}

static const char *
resolver_of(const struct rot_ctx *c)
{
	return c->resolver != NULL ? c->resolver : c->conf->dns.resolver;
}

int
rot_dns_shows(struct rot_ctx *c, const struct rot_key *k, int *shown)
{
	struct dk_buf name, value;
	struct rot_rec want, got;
	struct rot_txt txt;
	size_t i;
	int r;

	*shown = 0;
	dk_buf_init(&name, ROT_REC_NAME_MAX + 1);
	dk_buf_init(&value, ROT_REC_VALUE_MAX);
	rot_rec_init(&want);
	rot_rec_init(&got);
	rot_txt_init(&txt);
	if ((r = rot_key_record(k, 0, &name, &value)) != 0 ||
	    (r = rot_rec_parse(dk_buf_str(&value), value.len, &want)) != 0)
		goto out;
	if ((r = rot_dns_txt(resolver_of(c), dk_buf_str(&name), &txt)) != 0)
		goto out;
	for (i = 0; i < txt.n; i++) {
		if (rot_rec_parse(dk_buf_str(&txt.v[i]), txt.v[i].len, &got) == 0 &&
		    rot_rec_compare(&want, &got) == ROT_MATCH)
			*shown = 1;
	}
	/* Two different records at one name: a verifier may get either (RFC 6376 §3.6.2.2). */
	if (txt.n > 1)
		*shown = 0;
	r = 0;
out:
	dk_buf_free(&name);
	dk_buf_free(&value);
	rot_rec_free(&want);
	rot_rec_free(&got);
	rot_txt_free(&txt);
	return r;
}

int
rot_push(struct rot_ctx *c, const struct rot_ring *rg, const struct rot_keys *ks, struct rot_key *k,
    enum rot_pub act)
{
	static const char *const verbs[] = {
	    "publish this record", "replace the record with", "delete the record"};
	struct dk_buf name, value;
	int r;

	dk_buf_init(&name, ROT_REC_NAME_MAX + 1);
	dk_buf_init(&value, ROT_REC_VALUE_MAX);
	if ((r = rot_key_record(k, act != ROT_PUB_ADD, &name, &value)) != 0)
		goto out;
	if (act != ROT_PUB_ADD && rot_selector_shared(ks, k)) {
		r = 0; /* another live key answers at this name: leave DNS alone */
		goto out;
	}
	if ((r = rot_publish(c->conf, rg->ds, dk_buf_str(&name), dk_buf_str(&value), act)) != 0) {
		rot_report(c, ROT_ALERT, "publish-failed", rg, k, NULL,
		    "%s of %s failed, the ring keeps signing with its current key and the step "
		    "is retried: %s",
		    rot_pub_name(act), dk_buf_str(&name), dk_err_detail());
		goto out;
	}
	if (rg->ds->dns_publish != DK_PUBLISH_MANUAL)
		goto out;
	if (act == ROT_PUB_DELETE)
		rot_report(c, ROT_NOTICE, "publish-manual", rg, k, NULL,
		    "dns_publish = manual: delete the TXT record of %s", dk_buf_str(&name));
	else
		rot_report(c, ROT_NOTICE, "publish-manual", rg, k, dk_buf_str(&value),
		    "dns_publish = manual: %s: %s IN TXT \"%s\" (in strings of at most 255 "
		    "bytes, as \"dkimkeep key dns\" prints it)",
		    verbs[act], dk_buf_str(&name), dk_buf_str(&value));
out:
	dk_buf_free(&name);
	dk_buf_free(&value);
	return r;
}

/* A move another process made first is not an error: the ring is where it should go. */
static int
moved_elsewhere(struct rot_ctx *c, const struct rot_ring *rg, struct rot_key *k, int r)
{
	if (r == DK_ERR_EXISTS) {
		rot_report(
		    c, ROT_INFO, "skipped", rg, k, NULL, "%s; left as it is", dk_err_detail());
		return 0;
	}
	rot_report(c, ROT_WARN, "token-failed", rg, k, NULL,
	    "token \"%s\": %s; the ring keeps signing with its current key and the step is retried",
	    k->tok->name, dk_err_detail());
	return r;
}

int
rot_retire(struct rot_ctx *c, const struct rot_ring *rg, struct rot_key *k, const char *why)
{
	char when[32];
	int r;

	if ((r = rot_key_move(c, k, "retiring", k->k.meta.pushed, k->k.meta.seen)) != 0)
		return moved_elsewhere(c, rg, k, r);
	if (c->signing_moved != NULL)
		c->signing_moved(c->moved_arg);
	dk_time_rfc3339((time_t)(c->now + rg->ds->retire_after), when, sizeof(when));
	rot_report(c, ROT_NOTICE, "retired", rg, k, NULL,
	    "%s; its record stays published until %s, then it is revoked", why, when);
	return 0;
}

int
rot_activate(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks, struct rot_key *k,
    const char *why)
{
	size_t i;
	int r;

	/* New signing key first: with two, the newest activation signs (dkd_keyset). */
	if ((r = rot_key_move(c, k, rg->signing, k->k.meta.pushed, k->k.meta.seen)) != 0)
		return moved_elsewhere(c, rg, k, r);
	rot_report(c, ROT_NOTICE, "activated", rg, k, NULL, "%s; it %s from now on", why,
	    strcmp(rg->signing, "active") == 0 ? "signs" : "is the standby key");
	if (c->signing_moved != NULL)
		c->signing_moved(c->moved_arg);
	for (i = 0; i < ks->n; i++) {
		if (&ks->v[i] == k || !rot_in_ring(rg, &ks->v[i]) ||
		    !state_is(&ks->v[i], rg->signing))
			continue;
		if ((r = rot_retire(c, rg, &ks->v[i], "replaced by a newer key")) != 0)
			return r;
	}
	return 0;
}

int
rot_revoke(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks, struct rot_key *k)
{
	char when[32];
	int r;

	if ((r = rot_push(c, rg, ks, k, ROT_PUB_REVOKE)) != 0)
		return r;
	if ((r = rot_key_move(c, k, "revoked", c->now, 0)) != 0)
		return moved_elsewhere(c, rg, k, r);
	dk_time_rfc3339((time_t)(c->now + rg->ds->destroy_after), when, sizeof(when));
	rot_report(c, ROT_NOTICE, "revoked", rg, k, NULL,
	    "its record is now \"p=\" (RFC 6376 §3.6.1); the key is destroyed at %s", when);
	return 0;
}

int
rot_destroy(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks, struct rot_key *k)
{
	char sel[HSM_SELECTOR_MAX + 1];
	int r;

	if ((r = rot_push(c, rg, ks, k, ROT_PUB_DELETE)) != 0)
		return r;
	snprintf(sel, sizeof(sel), "%s", k->k.meta.selector);
	if ((r = rot_key_destroy(c, k)) != 0)
		return moved_elsewhere(c, rg, k, r);
	rot_report(c, ROT_NOTICE, "destroyed", rg, k, NULL,
	    "key %s (%s) is destroyed in token \"%s\" and its record deleted", k->k.id_hex, sel,
	    k->tok->name);
	return 0;
}

struct rot_key *
rot_ring_newest(const struct rot_ring *rg, struct rot_keys *ks, const char *state)
{
	struct rot_key *best = NULL;
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (!rot_in_ring(rg, &ks->v[i]) || !state_is(&ks->v[i], state))
			continue;
		if (best == NULL || ks->v[i].k.meta.changed > best->k.meta.changed)
			best = &ks->v[i];
	}
	return best;
}

/*
 * The pending key that goes on: the oldest (then the lowest id), so that
 * two daemons that both started one agree; the others are dropped.
 */
static struct rot_key *
pending_pick(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks)
{
	struct rot_key *p = NULL, *q;
	size_t i;

	for (i = 0; i < ks->n; i++) {
		q = &ks->v[i];
		if (!rot_in_ring(rg, q) || !state_is(q, "pending"))
			continue;
		if (p == NULL || q->k.meta.created < p->k.meta.created ||
		    (q->k.meta.created == p->k.meta.created &&
		        strcmp(q->k.id_hex, p->k.id_hex) < 0))
			p = q;
	}
	for (i = 0; p != NULL && i < ks->n; i++) {
		q = &ks->v[i];
		if (q == p || !rot_in_ring(rg, q) || !state_is(q, "pending"))
			continue;
		if (strcasecmp(q->k.meta.selector, p->k.meta.selector) == 0)
			(void)rot_destroy(c, rg, ks, q); /* never published apart from p */
		else
			(void)rot_retire(
			    c, rg, q, "a second rotation was started at the same time");
	}
	return p;
}

/* Not shown by DNS: wait, or publish again and alert once publish_wait has passed. */
static int
pending_unseen(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks, struct rot_key *p,
    const char *name)
{
	int64_t wait = rg->ds->publish_wait > 0 ? rg->ds->publish_wait : 1;
	int r;

	if (p->k.meta.seen != 0) {
		if ((r = rot_key_move(c, p, "pending", p->k.meta.pushed, 0)) != 0)
			return moved_elsewhere(c, rg, p, r);
		rot_report(c, ROT_ALERT, "dns-lost", rg, p, NULL,
		    "DNS no longer serves %s; the key waits publish_wait again once it does", name);
		return 0;
	}
	if (c->now - p->k.meta.pushed < wait) {
		rot_report(
		    c, ROT_INFO, "waiting", rg, p, NULL, "waiting for DNS to serve %s", name);
		return 0;
	}
	rot_report(c, ROT_ALERT, "dns-missing", rg, p, NULL,
	    "DNS (%s) still does not serve %s %lld s after it was published; the old key keeps "
	    "signing; published again",
	    resolver_of(c) ? resolver_of(c) : "system resolver", name,
	    (long long)(c->now - p->k.meta.pushed));
	if ((r = rot_push(c, rg, ks, p, ROT_PUB_ADD)) != 0)
		return r;
	if ((r = rot_key_move(c, p, "pending", c->now, 0)) != 0)
		return moved_elsewhere(c, rg, p, r);
	return 0;
}

/* Publish, wait for DNS, wait publish_wait, activate. */
static int
ring_pending(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks, struct rot_key *p)
{
	char name[ROT_REC_NAME_MAX + 1], when[32];
	int r, shown = 0;

	snprintf(name, sizeof(name), "%s._domainkey.%s", p->k.meta.selector, p->k.meta.domain);
	if (p->k.meta.pushed == 0) {
		if ((r = rot_push(c, rg, ks, p, ROT_PUB_ADD)) != 0)
			return r;
		if ((r = rot_key_move(c, p, "pending", c->now, 0)) != 0)
			return moved_elsewhere(c, rg, p, r);
		rot_report(c, ROT_NOTICE, "published", rg, p, NULL, "%s published (%s)", name,
		    rg->ds->dns_publish == DK_PUBLISH_RFC2136   ? "RFC 2136 update"
		    : rg->ds->dns_publish == DK_PUBLISH_COMMAND ? "publish_command"
		                                                : "by the operator");
	}
	if ((r = rot_dns_shows(c, p, &shown)) != 0) {
		rot_report(c, ROT_WARN, "dns-unavailable", rg, p, NULL,
		    "%s; the old key keeps signing", dk_err_detail());
		return r;
	}
	if (!shown)
		return pending_unseen(c, rg, ks, p, name);
	if (p->k.meta.seen == 0) {
		if ((r = rot_key_move(c, p, "pending", p->k.meta.pushed, c->now)) != 0)
			return moved_elsewhere(c, rg, p, r);
		rot_report(c, ROT_INFO, "seen", rg, p, NULL, "DNS serves %s", name);
	}
	if (c->now - p->k.meta.seen < rg->ds->publish_wait) {
		dk_time_rfc3339(
		    (time_t)(p->k.meta.seen + rg->ds->publish_wait), when, sizeof(when));
		rot_report(c, ROT_INFO, "waiting", rg, p, NULL,
		    "DNS serves %s; it %s at %s (publish_wait)", name,
		    strcmp(rg->signing, "active") == 0 ? "signs" : "becomes the standby key", when);
		return 0;
	}
	return rot_activate(c, rg, ks, p, "DNS has served its record for publish_wait");
}

/* Why the ring's signing key should be rotated now, or NULL. */
static const char *
rotation_due(const struct rot_ctx *c, const struct rot_ring *rg, const struct rot_key *cur,
    char *buf, size_t len)
{
	if (cur == NULL)
		return "the ring has no signing key";
	if (c->now - cur->k.meta.created >= rg->ds->rotate_every) {
		snprintf(buf, len, "key %s is older than rotate_every", cur->k.meta.selector);
		return buf;
	}
	if (cur->k.type == HSM_KEY_RSA && rg->ds->rsa_bits > 0 &&
	    cur->k.bits < (unsigned)rg->ds->rsa_bits) {
		snprintf(buf, len, "key %s has %u bits, rsa_bits is %d", cur->k.meta.selector,
		    cur->k.bits, rg->ds->rsa_bits);
		return buf;
	}
	return NULL;
}

int
rot_ring_begin(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks,
    const struct rot_key *cur, const char *selector, const char *why)
{
	size_t idx;
	int r;

	if ((r = rot_key_generate(
	         c, rg, ks, selector, cur != NULL ? cur->k.meta.selector : NULL, &idx)) != 0) {
		rot_report(c, ROT_ALERT, "start-failed", rg, NULL, NULL,
		    "a new %s key for %s cannot be made (%s); the current key keeps signing",
		    rg->alg, rg->ds->name, dk_err_detail());
		return r;
	}
	rot_report(c, ROT_NOTICE, "started", rg, &ks->v[idx], NULL, "rotation started: %s", why);
	return ring_pending(c, rg, ks, &ks->v[idx]);
}

int
rot_settled(const struct rot_ctx *c, const struct rot_key *k)
{
	/*
	 * Every daemon reloads its rings at the end of the first step that
	 * lists the change, so within one step_interval (plus that step) of
	 * the write.  changed is the time of the write (rot_key_move) in whole
	 * seconds, and so is c->now: ROT_SETTLE_SLACK covers both roundings
	 * and the reload itself.  With the time of the step's start instead,
	 * and no slack, a key retired late in a long step was revoked about
	 * one interval after it stopped signing, and a daemon that had not
	 * stepped yet signed with a key DNS already served as p=.
	 */
	return c->now - k->k.meta.changed >=
	       2 * (int64_t)c->conf->daemon.step_interval + ROT_SETTLE_SLACK;
}

/* Retiring keys past retire_after are revoked; revoked past destroy_after destroyed. */
static void
ring_old(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks)
{
	struct rot_key *k;
	size_t i;

	for (i = 0; i < ks->n; i++) {
		k = &ks->v[i];
		if (!rot_in_ring(rg, k))
			continue;
		if (state_is(k, "retiring") && c->now - k->k.meta.changed >= rg->ds->retire_after &&
		    rot_settled(c, k))
			(void)rot_revoke(c, rg, ks, k);
		else if (state_is(k, "revoked") &&
		         c->now - k->k.meta.changed >= rg->ds->destroy_after)
			(void)rot_destroy(c, rg, ks, k);
	}
}

/* Is a rotation under way in any ring of ds's slot (a pending key)? */
static int
slot_busy(const struct rot_keys *ks, const char *slot)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (strcmp(ks->v[i].k.meta.slot, slot) == 0 && state_is(&ks->v[i], "pending"))
			return 1;
	}
	return 0;
}

static void
ring_step(struct rot_ctx *c, const struct rot_ring *rg, struct rot_keys *ks, int other_busy)
{
	struct rot_key *p, *cur;
	const char *why;
	char buf[160];
	size_t i;

	if (!rg->configured) {
		/* An algorithm taken out of algorithms=: its keys leave by the usual way. */
		for (i = 0; i < ks->n; i++) {
			if (rot_in_ring(rg, &ks->v[i]) &&
			    (state_is(&ks->v[i], rg->signing) || state_is(&ks->v[i], "pending")))
				(void)rot_retire(
				    c, rg, &ks->v[i], "its algorithm is not in algorithms=");
		}
	} else if ((p = pending_pick(c, rg, ks)) != NULL) {
		(void)ring_pending(c, rg, ks, p);
	} else if (!(c->flags & ROT_F_NO_START) && !other_busy) {
		cur = rot_ring_newest(rg, ks, rg->signing);
		if ((why = rotation_due(c, rg, cur, buf, sizeof(buf))) != NULL)
			(void)rot_ring_begin(c, rg, ks, cur, NULL, why);
	}
	/* Two signing keys (a crash after an activation): the older one retires now. */
	if (rg->configured && (cur = rot_ring_newest(rg, ks, rg->signing)) != NULL) {
		for (i = 0; i < ks->n; i++) {
			if (&ks->v[i] != cur && rot_in_ring(rg, &ks->v[i]) &&
			    state_is(&ks->v[i], rg->signing))
				(void)rot_retire(c, rg, &ks->v[i], "replaced by a newer key");
		}
	}
	ring_old(c, rg, ks);
}

/*
 * Keys whose pair is gone: finish a destruction a crash cut short (the
 * objects left over go, the record becomes a tombstone), and forget a
 * tombstone once DNS no longer serves a record at its name; until then
 * "dns check" names that record.  A record with no private key that does
 * not say "destroyed" is left alone unless it is revoked (what a crash in
 * the middle of an older dkimkeep's destroy left): a key is never
 * destroyed on the strength of one listing that missed its private key.
 */
static void
ring_gone(struct rot_ctx *c, const struct dk_conf_domain *ds, const struct rot_tok *tok,
    struct rot_keys *ks)
{
	struct rot_ring rg;
	struct rot_key *k;
	struct rot_txt txt;
	char name[ROT_REC_NAME_MAX + 1];
	size_t i;
	int r;

	for (i = 0; i < ks->n; i++) {
		k = &ks->v[i];
		if (k->tok != tok || k->k.meta.state[0] == '\0' || !rot_key_gone(k))
			continue;
		if (!state_is(k, "destroyed") &&
		    (!state_is(k, "revoked") || c->now - k->k.meta.changed < ds->destroy_after))
			continue;
		memset(&rg, 0, sizeof(rg));
		rot_ring_init(c, &rg, ds, k->k.meta.alg, k->k.meta.slot);
		if (!state_is(k, "destroyed") || k->k.priv != 0 || k->k.pub != 0) {
			if ((r = rot_key_destroy(c, k)) != 0) {
				(void)moved_elsewhere(c, &rg, k, r);
				continue;
			}
			rot_report(c, ROT_NOTICE, "destroyed", &rg, k, NULL,
			    "key %s: a destruction cut short is finished", k->k.id_hex);
		}
		snprintf(
		    name, sizeof(name), "%s._domainkey.%s", k->k.meta.selector, k->k.meta.domain);
		rot_txt_init(&txt);
		r = rot_selector_shared(ks, k) ? 0 : rot_dns_txt(resolver_of(c), name, &txt);
		if (r == 0 && txt.n == 0) {
			if ((r = rot_key_forget(c, k)) != 0)
				(void)moved_elsewhere(c, &rg, k, r);
		} else if (r == 0) {
			rot_report(c, ROT_INFO, "waiting", &rg, k, NULL,
			    "DNS still serves %s for a destroyed key; its tombstone stays until "
			    "the record is gone (\"dkimkeep dns check\" reports it)",
			    name);
		} else {
			rot_report(c, ROT_INFO, "dns-unavailable", &rg, k, NULL,
			    "%s; the tombstone of the destroyed key is looked at again at the next "
			    "step",
			    dk_err_detail());
		}
		rot_txt_free(&txt);
	}
}

/* Does ds have keys of alg in slot, or should it? */
static int
ring_wanted(const struct rot_ring *rg, const struct rot_keys *ks)
{
	size_t i;

	if (rg->configured)
		return 1;
	for (i = 0; i < ks->n; i++) {
		if (rot_in_ring(rg, &ks->v[i]))
			return 1;
	}
	return 0;
}

static int
step_domain(struct rot_ctx *c, const struct dk_conf_domain *ds)
{
	static const char *const slots[] = {"primary", "backup"};
	struct rot_keys ks = {NULL, 0};
	struct rot_tok *tok;
	struct rot_ring rg;
	int busy[2], s, a, r;

	if ((r = rot_keys_load(c, ds, &ks)) != 0)
		goto out;
	busy[0] = slot_busy(&ks, "primary");
	busy[1] = slot_busy(&ks, "backup");
	for (s = 0; s < 2; s++) {
		if (s == 1 && ds->backup == NULL)
			continue;
		for (a = 0; a < 2; a++) {
			rot_ring_init(c, &rg, ds, rot_algs[a], slots[s]);
			if (rg.tok == NULL || rg.tok->s == NULL) {
				/* A token event: named with an algorithm the domain has. */
				if (a == 0 && !rg.configured)
					rot_ring_init(c, &rg, ds, rot_algs[1], slots[s]);
				if (a == 0)
					rot_report(c, ROT_WARN, "token-unavailable", &rg, NULL,
					    NULL,
					    "token \"%s\" is not available: the %s keys of %s are "
					    "not rotated until it is back",
					    s == 0 ? ds->primary : ds->backup, slots[s], ds->name);
				break;
			}
			/* Its keys are read (c->digest tells of moves), its driver moves them. */
			if (rg.tok->observe)
				break;
			if (!ring_wanted(&rg, &ks))
				continue;
			/* The active and standby keys of a domain never rotate together. */
			ring_step(c, &rg, &ks, busy[1 - s]);
			busy[s] = slot_busy(&ks, slots[s]);
		}
		/* Destroyed keys of this slot's token (once for a token in both slots). */
		tok = rot_tok_find(c, s == 0 ? ds->primary : ds->backup);
		if (tok != NULL && tok->s != NULL && !tok->observe &&
		    (s == 0 || strcmp(ds->primary, ds->backup) != 0))
			ring_gone(c, ds, tok, &ks);
	}
	r = 0;
out:
	if (r != 0)
		rot_report(c, ROT_WARN, "token-failed",
		    &(struct rot_ring){.ds = ds, .alg = "", .slot = ""}, NULL, NULL,
		    "the keys of %s cannot be read: %s", ds->name, dk_err_detail());
	rot_keys_free(&ks);
	return r == DK_ERR_NOMEM ? r : 0;
}

int
rot_step(struct rot_ctx *c, const char *domain)
{
	size_t i;
	int r;

	c->digest = 0xcbf29ce484222325ull;
	c->step = 1;
	r = 0;
	for (i = 0; i < c->conf->ndomains && r == 0; i++) {
		if (domain != NULL && strcasecmp(c->conf->domains[i].name, domain) != 0)
			continue;
		r = step_domain(c, &c->conf->domains[i]);
	}
	c->step = 0;
	rot_toks_forget(c);
	return r;
}
