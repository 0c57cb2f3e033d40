/*
 * hsm_list.c - finding the dkimkeep keys of a token.
 *
 * Three searches whatever the number of keys (C_FindObjects is slow in
 * SoftHSM, PKCS11-NOTES.md): our metadata objects, all private keys, all
 * public keys; key objects are matched to metadata by CKA_ID.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "hsm/hsm_int.h"

#define ID_READ_MAX          64 /* CKA_ID bytes read from other applications' keys */
#define HSM_LIST_TRIES       3  /* listings when objects vanish under us (another process) */
#define HSM_RECHECK_TRIES    3  /* hsm_key_recheck: fresh listings and checks */
#define HSM_RECHECK_PAUSE_NS 200000000L /* between them */

struct entry {
	struct hsm_key key;
	unsigned long rev;
	int npriv, npub;
};

/* Is (m, rev) newer than what entry e holds? */
static int
newer(const struct hsm_key_meta *m, unsigned long rev, const struct entry *e)
{
	if (m->changed != e->key.meta.changed)
		return m->changed > e->key.meta.changed;
	return rev > e->rev;
}

/* Keep one metadata object per key id: the newest; remove the others. */
static void
entry_merge(struct hsm_session *s, struct entry *e, CK_OBJECT_HANDLE o,
    const struct hsm_key_meta *m, unsigned long rev)
{
	CK_OBJECT_HANDLE stale = o;

	if (newer(m, rev, e)) {
		stale = e->key.data;
		e->key.data = o;
		e->key.meta = *m;
		e->rev = rev;
	}
	/* A crash between writing a new record and removing the old one (hsm_key_set_meta). */
	dk_log_notice("token \"%s\": key %s had two metadata records; removing the older one",
	    s->t->label, e->key.id_hex);
	if (hsm_destroy(s, stale, "an old metadata object") != 0)
		dk_log_warn("%s", dk_err_detail());
}

/* Read our metadata objects into *entries (one per key id). */
static int
read_meta(struct hsm_session *s, struct entry **entries, size_t *n)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_APPLICATION, (void *)(uintptr_t)HSM_APPLICATION, strlen(HSM_APPLICATION)},
	};
	CK_OBJECT_HANDLE *objs = NULL;
	CK_ULONG count = 0, i;
	struct entry *list = NULL;
	struct hsm_key_meta m;
	uint8_t id[HSM_KEY_ID_LEN];
	unsigned long rev;
	size_t got = 0, j;
	int r;

	*entries = NULL;
	*n = 0;
	if ((r = hsm_find(s, tmpl, 2, &objs, &count)) != 0)
		goto out;
	if ((list = calloc(count + 1, sizeof(*list))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < count; i++) {
		r = hsm_meta_read(s, objs[i], id, &m, &rev);
		if (r == DK_ERR_PARSE || r == DK_ERR_NOT_FOUND || r == DK_ERR_TOO_LARGE) {
			dk_log_warn("%s; that key is skipped", dk_err_detail());
			continue;
		}
		if (r != 0)
			goto out;
		for (j = 0; j < got; j++) {
			if (memcmp(list[j].key.id, id, HSM_KEY_ID_LEN) == 0)
				break;
		}
		if (j < got) {
			entry_merge(s, &list[j], objs[i], &m, rev);
			continue;
		}
		memcpy(list[got].key.id, id, HSM_KEY_ID_LEN);
		hsm_id_hex(id, list[got].key.id_hex);
		list[got].key.data = objs[i];
		list[got].key.meta = m;
		list[got].rev = rev;
		got++;
	}
	*entries = list;
	*n = got;
	list = NULL;
	r = 0;
out:
	free(list);
	free(objs);
	return r;
}

static struct entry *
entry_by_id(struct entry *list, size_t n, const uint8_t *id, size_t idlen)
{
	size_t i;

	if (idlen != HSM_KEY_ID_LEN)
		return NULL;
	for (i = 0; i < n; i++) {
		if (memcmp(list[i].key.id, id, HSM_KEY_ID_LEN) == 0)
			return &list[i];
	}
	return NULL;
}

/* Attach the key objects of class cls to the entries with their CKA_ID. */
static int
match_objects(struct hsm_session *s, CK_OBJECT_CLASS cls, struct entry *list, size_t n)
{
	CK_ATTRIBUTE tmpl = {CKA_CLASS, &cls, sizeof(cls)};
	CK_OBJECT_HANDLE *objs = NULL;
	CK_ULONG count = 0, i;
	struct dk_buf id;
	struct entry *e;
	int r;

	dk_buf_init(&id, ID_READ_MAX);
	if ((r = hsm_find(s, &tmpl, 1, &objs, &count)) != 0)
		goto out;
	for (i = 0; i < count; i++) {
		dk_buf_reset(&id);
		r = hsm_attr_bytes(s, objs[i], CKA_ID, ID_READ_MAX, &id);
		if (r == DK_ERR_NOT_FOUND || r == DK_ERR_TOO_LARGE)
			continue; /* not one of ours */
		if (r != 0)
			goto out;
		if ((e = entry_by_id(list, n, id.data, id.len)) == NULL)
			continue;
		if (cls == CKO_PRIVATE_KEY) {
			e->key.priv = objs[i];
			e->npriv++;
		} else {
			e->key.pub = objs[i];
			e->npub++;
		}
	}
	r = 0;
out:
	dk_buf_free(&id);
	free(objs);
	return r;
}

static int
rsa_bits(struct hsm_session *s, CK_OBJECT_HANDLE pub, unsigned *bits)
{
	struct dk_buf mod;
	CK_ULONG b = 0;
	size_t i;
	int r;

	if (hsm_attr_ulong(s, pub, CKA_MODULUS_BITS, &b) == 0 && b > 0 && b <= 16384) {
		*bits = (unsigned)b;
		return 0;
	}
	dk_buf_init(&mod, HSM_ATTR_MAX);
	if ((r = hsm_attr_bytes(s, pub, CKA_MODULUS, HSM_ATTR_MAX, &mod)) == 0) {
		for (i = 0; i < mod.len && mod.data[i] == 0; i++)
			;
		*bits = (unsigned)((mod.len - i) * 8);
		if (i < mod.len) {
			for (uint8_t top = mod.data[i]; (top & 0x80) == 0; top <<= 1)
				(*bits)--;
		}
	}
	dk_buf_free(&mod);
	return r;
}

/*
 * A record whose key pair is gone or going (a tombstone, or a destruction
 * cut short): its type from alg=, its size from a public key left over.
 */
static int
entry_gone(struct hsm_session *s, struct entry *e)
{
	e->key.type = strcmp(e->key.meta.alg, "rsa-sha256") == 0 ? HSM_KEY_RSA : HSM_KEY_ED25519;
	e->key.bits = e->key.type == HSM_KEY_ED25519 ? 255 : 0;
	if (e->npriv != 1)
		e->key.priv = CK_INVALID_HANDLE;
	if (e->npub != 1)
		e->key.pub = CK_INVALID_HANDLE;
	else if (e->key.type == HSM_KEY_RSA && rsa_bits(s, e->key.pub, &e->key.bits) != 0)
		e->key.bits = 0;
	return 0;
}

/* Fill type and bits of a matched entry; DK_ERR_PARSE for a key to skip. */
static int
entry_finish(struct hsm_session *s, struct entry *e, int all)
{
	CK_ULONG kt = 0;
	int r;

	if (strcmp(e->key.meta.state, "destroyed") == 0)
		return all ? entry_gone(s, e) : DK_ERR_NOT_FOUND;
	if (all && e->npriv == 0)
		return entry_gone(s, e);
	if (e->npriv != 1 || e->npub != 1)
		return dk_err_set(DK_ERR_PARSE,
		    "token \"%s\": key %s (%s._domainkey.%s) has %d private and %d public key "
		    "objects, not one of each",
		    s->t->label, e->key.id_hex, e->key.meta.selector, e->key.meta.domain, e->npriv,
		    e->npub);
	if ((r = hsm_attr_ulong(s, e->key.priv, CKA_KEY_TYPE, &kt)) != 0)
		return r;
	if (kt == CKK_RSA && strcmp(e->key.meta.alg, "rsa-sha256") == 0) {
		e->key.type = HSM_KEY_RSA;
		return rsa_bits(s, e->key.pub, &e->key.bits);
	}
	if (kt == CKK_EC_EDWARDS && strcmp(e->key.meta.alg, "ed25519-sha256") == 0) {
		e->key.type = HSM_KEY_ED25519;
		e->key.bits = 255;
		return 0;
	}
	return dk_err_set(DK_ERR_PARSE, "token \"%s\": key %s has key type 0x%lx but alg=%s",
	    s->t->label, e->key.id_hex, (unsigned long)kt, e->key.meta.alg);
}

/* One listing; see hsm_key_list and hsm_key_list_all. */
static int
key_list_once(struct hsm_session *s, struct hsm_key **keys, size_t *n, int all)
{
	struct entry *list = NULL;
	struct hsm_key *out = NULL;
	size_t count = 0, i, got = 0;
	int r;

	*keys = NULL;
	*n = 0;
	if ((r = read_meta(s, &list, &count)) != 0)
		goto out;
	if ((r = match_objects(s, CKO_PRIVATE_KEY, list, count)) != 0 ||
	    (r = match_objects(s, CKO_PUBLIC_KEY, list, count)) != 0)
		goto out;
	if ((out = calloc(count + 1, sizeof(*out))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < count; i++) {
		r = entry_finish(s, &list[i], all);
		if (r == DK_ERR_NOT_FOUND && strcmp(list[i].key.meta.state, "destroyed") == 0)
			continue; /* a tombstone: no key */
		if (r == DK_ERR_PARSE || r == DK_ERR_NOT_FOUND || r == DK_ERR_TOO_LARGE) {
			dk_log_warn("%s; that key is skipped", dk_err_detail());
			continue;
		}
		if (r != 0)
			goto out;
		out[got++] = list[i].key;
	}
	*keys = out;
	*n = got;
	out = NULL;
	r = 0;
out:
	free(out);
	free(list);
	return r;
}

static int
key_list(struct hsm_session *s, struct hsm_key **keys, size_t *n, int all)
{
	int r, tries;

	/*
	 * Another process (a second daemon, "dkimkeep key step") may replace a
	 * metadata record or destroy a key between our C_FindObjects and the
	 * reads of what it found: CKR_OBJECT_HANDLE_INVALID, which alone looks
	 * like a failing token.  List again; a token that really fails does so
	 * every time.
	 */
	for (tries = 0; tries < HSM_LIST_TRIES; tries++) {
		if ((r = key_list_once(s, keys, n, all)) != DK_ERR_TOKEN_FAILING)
			break;
		dk_log_debug("token \"%s\": an object went away while listing keys; listing again",
		    s->t->label);
	}
	return r;
}

int
hsm_key_list(struct hsm_session *s, struct hsm_key **keys, size_t *n)
{
	return key_list(s, keys, n, 0);
}

int
hsm_key_list_all(struct hsm_session *s, struct hsm_key **keys, size_t *n)
{
	return key_list(s, keys, n, 1);
}

int
hsm_key_recheck(struct hsm_session *s, struct hsm_key *k, int *weak, char *why, size_t whylen)
{
	struct hsm_key *keys = NULL;
	size_t n = 0, i;
	int r = DK_ERR_INTERNAL, tries;

	for (tries = 0; tries < HSM_RECHECK_TRIES; tries++) {
		if (tries > 0)
			nanosleep(&(struct timespec){0, HSM_RECHECK_PAUSE_NS}, NULL);
		free(keys);
		keys = NULL;
		if ((r = hsm_key_list(s, &keys, &n)) != 0)
			continue;
		for (i = 0; i < n; i++)
			if (memcmp(keys[i].id, k->id, HSM_KEY_ID_LEN) == 0)
				break;
		if (i == n) {
			r = dk_err_set(DK_ERR_NOT_FOUND, "token \"%s\": key %s is gone",
			    s->t->label, k->id_hex);
			break;
		}
		*k = keys[i];
		if ((r = hsm_key_check(s, k, weak, why, whylen)) == 0) {
			dk_log_warn("token \"%s\": key %s (%s._domainkey.%s) read back wrong, and "
			            "whole on a fresh listing: a stale view of a token other "
			            "processes write; it is used",
			    s->t->label, k->id_hex, k->meta.selector, k->meta.domain);
			break;
		}
	}
	free(keys);
	return r;
}
