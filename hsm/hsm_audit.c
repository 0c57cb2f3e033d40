/*
 * hsm_audit.c - the audit log's keys in the token: an HMAC secret for
 * Message-IDs, an Ed25519 pair for checkpoints, and the anchor object that
 * remembers the newest checkpoint (docs/audit.md).
 *
 * None of these is a DKIM key: they have no metadata object, so
 * hsm_key_list() skips them, and they are found by label.  Every attribute
 * that matters is set explicitly (PKCS11-NOTES.md "Unsafe defaults").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "hsm/hsm_int.h"

#define ANCHOR_MAX   256 /* bytes of the anchor's CKA_VALUE */
#define EC_POINT_MAX 64

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static const CK_OBJECT_CLASS class_secret = CKO_SECRET_KEY, class_private = CKO_PRIVATE_KEY,
                             class_public = CKO_PUBLIC_KEY, class_data = CKO_DATA;
static const CK_KEY_TYPE keytype_generic = CKK_GENERIC_SECRET;
static const CK_MECHANISM_TYPE mechs_hmac[] = {CKM_SHA256_HMAC};
static const CK_ULONG hmac_key_len = 32;

/* Objects of class cls labelled label; *objs malloc'd. */
static int
find_labelled(struct hsm_session *s, CK_OBJECT_CLASS cls, const char *label,
    CK_OBJECT_HANDLE **objs, CK_ULONG *n)
{
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_LABEL, (void *)(uintptr_t)label, strlen(label)},
	};

	return hsm_find(s, tmpl, 2, objs, n);
}

/* The CKA_ID of o (HSM_KEY_ID_LEN bytes; anything else reads as all 0xff). */
static int
read_id(struct hsm_session *s, CK_OBJECT_HANDLE o, uint8_t id[HSM_KEY_ID_LEN])
{
	struct dk_buf b;
	int r;

	dk_buf_init(&b, 64);
	memset(id, 0xff, HSM_KEY_ID_LEN);
	r = hsm_attr_bytes(s, o, CKA_ID, 64, &b);
	if (r == 0 && b.len == HSM_KEY_ID_LEN)
		memcpy(id, b.data, HSM_KEY_ID_LEN);
	if (r == DK_ERR_NOT_FOUND)
		r = 0;
	dk_buf_free(&b);
	return r;
}

/* Of objs, the one with the lowest CKA_ID: every process picks the same. */
static int
lowest_id(struct hsm_session *s, const CK_OBJECT_HANDLE *objs, CK_ULONG n, CK_OBJECT_HANDLE *out,
    uint8_t id[HSM_KEY_ID_LEN])
{
	uint8_t cur[HSM_KEY_ID_LEN];
	CK_ULONG i;
	int r;

	for (i = 0; i < n; i++) {
		if ((r = read_id(s, objs[i], cur)) != 0)
			return r;
		if (i == 0 || memcmp(cur, id, HSM_KEY_ID_LEN) < 0) {
			memcpy(id, cur, HSM_KEY_ID_LEN);
			*out = objs[i];
		}
	}
	return 0;
}

/* An audit key must be sensitive and never leave the token. */
static int
check_sensitive(struct hsm_session *s, CK_OBJECT_HANDLE o, const char *what)
{
	int sensitive = 0, extractable = 1, r;

	if ((r = hsm_attr_bool(s, o, CKA_SENSITIVE, &sensitive)) != 0 ||
	    (r = hsm_attr_bool(s, o, CKA_EXTRACTABLE, &extractable)) != 0)
		return r;
	if (!sensitive || extractable)
		return dk_err_set(DK_ERR_KEY_HYGIENE,
		    "token \"%s\": the audit %s is %s; destroy it (it was not made by dkimkeep) "
		    "and let dkimkeep make a new one",
		    s->t->label, what, !sensitive ? "not sensitive" : "extractable");
	return 0;
}

static int
hmac_create(struct hsm_session *s, CK_OBJECT_HANDLE *out)
{
	CK_MECHANISM mech = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
	struct hsm_tmpl t = {.n = 0};
	uint8_t id[HSM_KEY_ID_LEN];
	CK_RV rv;
	int r;

	if ((r = hsm_id_new(s, id)) != 0)
		return r;
	hsm_tmpl_add(&t, CKA_CLASS, &class_secret, sizeof(class_secret));
	hsm_tmpl_add(&t, CKA_KEY_TYPE, &keytype_generic, sizeof(keytype_generic));
	hsm_tmpl_add(&t, CKA_VALUE_LEN, &hmac_key_len, sizeof(hmac_key_len));
	hsm_tmpl_add(&t, CKA_TOKEN, &yes, sizeof(yes));
	hsm_tmpl_add(&t, CKA_PRIVATE, &yes, sizeof(yes));
	hsm_tmpl_add(&t, CKA_SENSITIVE, &yes, sizeof(yes));
	hsm_tmpl_add(&t, CKA_EXTRACTABLE, &no, sizeof(no));
	hsm_tmpl_add(&t, CKA_SIGN, &yes, sizeof(yes));
	hsm_tmpl_add(&t, CKA_VERIFY, &no, sizeof(no));
	hsm_tmpl_add(&t, CKA_ENCRYPT, &no, sizeof(no));
	hsm_tmpl_add(&t, CKA_DECRYPT, &no, sizeof(no));
	hsm_tmpl_add(&t, CKA_WRAP, &no, sizeof(no));
	hsm_tmpl_add(&t, CKA_UNWRAP, &no, sizeof(no));
	hsm_tmpl_add(&t, CKA_DERIVE, &no, sizeof(no));
	hsm_tmpl_add(&t, CKA_MODIFIABLE, &no, sizeof(no));
	hsm_tmpl_add(&t, CKA_ALLOWED_MECHANISMS, mechs_hmac, sizeof(mechs_hmac));
	hsm_tmpl_add(&t, CKA_ID, id, HSM_KEY_ID_LEN);
	hsm_tmpl_add(&t, CKA_LABEL, HSM_AUDIT_HMAC_LABEL, strlen(HSM_AUDIT_HMAC_LABEL));
	if (t.overflow)
		return DK_ERR_INTERNAL;
	rv = hsm_store_generate(s, &mech, t.a, t.n, out);
	if (rv != CKR_OK)
		return hsm_fail(
		    rv, "token \"%s\": generating the audit HMAC key (C_GenerateKey)", s->t->label);
	dk_log_notice("token \"%s\": audit HMAC key created", s->t->label);
	return 0;
}

static int
pair_create(struct hsm_session *s, CK_OBJECT_HANDLE *priv, CK_OBJECT_HANDLE *pub)
{
	CK_MECHANISM mech = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
	struct hsm_tmpl tpriv = {.n = 0}, tpub = {.n = 0};
	uint8_t id[HSM_KEY_ID_LEN];
	CK_RV rv;
	int r;

	if ((r = hsm_id_new(s, id)) != 0)
		return r;
	/* The same attributes as DKIM keys: sign only, never extractable, not modifiable. */
	hsm_tmpl_private(&tpriv, HSM_KEY_ED25519, id, HSM_AUDIT_SIGN_LABEL);
	hsm_tmpl_public(&tpub, HSM_KEY_ED25519, id, HSM_AUDIT_SIGN_LABEL);
	hsm_tmpl_add(&tpub, CKA_EC_PARAMS, hsm_ed25519_oid, sizeof(hsm_ed25519_oid));
	if (tpriv.overflow || tpub.overflow)
		return DK_ERR_INTERNAL;
	rv = hsm_store_generate_pair(s, &mech, &tpub, &tpriv, pub, priv);
	if (rv != CKR_OK)
		return hsm_fail(rv,
		    "token \"%s\": generating the audit Ed25519 key pair (C_GenerateKeyPair)",
		    s->t->label);
	dk_log_notice("token \"%s\": audit checkpoint key created", s->t->label);
	return 0;
}

/* CKA_EC_POINT: DER OCTET STRING around 32 bytes (SoftHSM), or 32 raw bytes. */
static int
read_point(struct hsm_session *s, CK_OBJECT_HANDLE pub, uint8_t raw[HSM_AUDIT_PUB_LEN])
{
	struct dk_buf pt;
	int r;

	dk_buf_init(&pt, EC_POINT_MAX);
	if ((r = hsm_attr_bytes(s, pub, CKA_EC_POINT, EC_POINT_MAX, &pt)) != 0)
		goto out;
	if (pt.len == HSM_AUDIT_PUB_LEN + 2 && pt.data[0] == 0x04 &&
	    pt.data[1] == HSM_AUDIT_PUB_LEN)
		memcpy(raw, pt.data + 2, HSM_AUDIT_PUB_LEN);
	else if (pt.len == HSM_AUDIT_PUB_LEN)
		memcpy(raw, pt.data, HSM_AUDIT_PUB_LEN);
	else
		r = dk_err_set(DK_ERR_PARSE,
		    "token \"%s\": the audit public key has a CKA_EC_POINT of %zu bytes",
		    s->t->label, pt.len);
out:
	dk_buf_free(&pt);
	return r;
}

/* The public key object with the CKA_ID of the chosen private key. */
static int
pair_public(struct hsm_session *s, const uint8_t id[HSM_KEY_ID_LEN], CK_OBJECT_HANDLE *pub)
{
	CK_OBJECT_CLASS cls = class_public;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_ID, (void *)(uintptr_t)id, HSM_KEY_ID_LEN},
	    {CKA_LABEL, (void *)(uintptr_t)HSM_AUDIT_SIGN_LABEL, strlen(HSM_AUDIT_SIGN_LABEL)},
	};
	CK_OBJECT_HANDLE *objs = NULL;
	CK_ULONG n = 0;
	int r;

	if ((r = hsm_find(s, tmpl, 3, &objs, &n)) != 0)
		return r;
	if (n == 0)
		r = dk_err_set(DK_ERR_NOT_FOUND,
		    "token \"%s\": the audit key pair has no public key object", s->t->label);
	else
		*pub = objs[0];
	free(objs);
	return r;
}

static int
find_hmac(struct hsm_session *s, int create, struct hsm_audit_keys *out)
{
	CK_OBJECT_HANDLE *objs = NULL, h = CK_INVALID_HANDLE;
	uint8_t id[HSM_KEY_ID_LEN];
	CK_ULONG n = 0;
	int r;

	if ((r = find_labelled(s, class_secret, HSM_AUDIT_HMAC_LABEL, &objs, &n)) != 0)
		goto out;
	if (n > 0)
		r = lowest_id(s, objs, n, &h, id);
	else if (create)
		r = hmac_create(s, &h);
	else
		r = dk_err_set(DK_ERR_NOT_FOUND, "token \"%s\" has no audit HMAC key", s->t->label);
	if (r == 0 && (r = check_sensitive(s, h, "HMAC key")) == 0)
		out->hmac = h;
out:
	free(objs);
	return r;
}

static int
find_pair(struct hsm_session *s, int create, struct hsm_audit_keys *out)
{
	CK_OBJECT_HANDLE *objs = NULL, priv = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
	uint8_t id[HSM_KEY_ID_LEN];
	CK_ULONG n = 0;
	int r;

	if ((r = find_labelled(s, class_private, HSM_AUDIT_SIGN_LABEL, &objs, &n)) != 0)
		goto out;
	if (n > 0) {
		if ((r = lowest_id(s, objs, n, &priv, id)) != 0 ||
		    (r = pair_public(s, id, &pub)) != 0)
			goto out;
	} else if (create) {
		if ((r = pair_create(s, &priv, &pub)) != 0)
			goto out;
	} else {
		r = dk_err_set(
		    DK_ERR_NOT_FOUND, "token \"%s\" has no audit checkpoint key", s->t->label);
		goto out;
	}
	if ((r = check_sensitive(s, priv, "checkpoint key")) != 0 ||
	    (r = read_point(s, pub, out->pubkey)) != 0)
		goto out;
	out->priv = priv;
	out->pub = pub;
out:
	free(objs);
	return r;
}

int
hsm_audit_keys(struct hsm_session *s, int create, struct hsm_audit_keys *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = find_hmac(s, create, out)) != 0 || (r = find_pair(s, create, out)) != 0)
		return r;
	return 0;
}

/* One C_SignInit + C_Sign of exactly outlen bytes. */
static int
sign_once(struct hsm_session *s, CK_MECHANISM_TYPE m, CK_OBJECT_HANDLE key, const void *data,
    size_t len, uint8_t *out, CK_ULONG outlen, const char *what)
{
	CK_MECHANISM mech = {m, NULL, 0};
	CK_ULONG got = outlen;
	CK_RV rv;

	if ((rv = s->t->m->f->C_SignInit(s->h, &mech, key)) != CKR_OK)
		return hsm_fail(rv, "token \"%s\": %s (C_SignInit)", s->t->label, what);
	/* PKCS#11 takes a non-const pointer; the module only reads the data. */
	rv = s->t->m->f->C_Sign(s->h, (CK_BYTE_PTR)(uintptr_t)data, (CK_ULONG)len, out, &got);
	if (rv != CKR_OK)
		return hsm_fail(rv, "token \"%s\": %s (C_Sign)", s->t->label, what);
	if (got != outlen)
		return dk_err_set(DK_ERR_PKCS11, "token \"%s\": %s gave %lu bytes, not %lu",
		    s->t->label, what, (unsigned long)got, (unsigned long)outlen);
	return 0;
}

int
hsm_audit_hmac(struct hsm_session *s, const struct hsm_audit_keys *k, const void *data, size_t len,
    uint8_t mac[HSM_AUDIT_MAC_LEN])
{
	return sign_once(
	    s, CKM_SHA256_HMAC, k->hmac, data, len, mac, HSM_AUDIT_MAC_LEN, "audit HMAC");
}

int
hsm_audit_sign(struct hsm_session *s, const struct hsm_audit_keys *k, const void *msg, size_t len,
    uint8_t sig[HSM_AUDIT_SIG_LEN])
{
	return sign_once(
	    s, CKM_EDDSA, k->priv, msg, len, sig, HSM_AUDIT_SIG_LEN, "signing an audit checkpoint");
}

int
hsm_audit_pubkeys(struct hsm_session *s, uint8_t (**keys)[HSM_AUDIT_PUB_LEN], size_t *n)
{
	CK_OBJECT_HANDLE *objs = NULL;
	uint8_t(*list)[HSM_AUDIT_PUB_LEN] = NULL;
	CK_ULONG count = 0, i;
	int r;

	*keys = NULL;
	*n = 0;
	if ((r = find_labelled(s, class_public, HSM_AUDIT_SIGN_LABEL, &objs, &count)) != 0)
		goto out;
	if (count > HSM_AUDIT_KEYS_MAX) {
		r = dk_err_set(DK_ERR_TOO_LARGE, "token \"%s\" holds %lu audit keys (limit %d)",
		    s->t->label, (unsigned long)count, HSM_AUDIT_KEYS_MAX);
		goto out;
	}
	if ((list = calloc(count + 1, sizeof(*list))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < count; i++) {
		if ((r = read_point(s, objs[i], list[i])) != 0)
			goto out;
	}
	*keys = list;
	*n = count;
	list = NULL;
	r = 0;
out:
	free(list);
	free(objs);
	return r;
}

/* ---- the anchor ---- */

static int
anchor_parse(const char *text, struct hsm_audit_anchor *a)
{
	char hex[65];
	uint64_t seq;
	long long t;
	int used = 0;
	size_t i;
	unsigned v;

	if (sscanf(text, "v=1\nseq=%" SCNu64 "\nhash=%64[0-9a-f]\ntime=%lld\n%n", &seq, hex, &t,
	        &used) != 3 ||
	    used == 0 || text[used] != '\0' || strlen(hex) != 64)
		return DK_ERR_PARSE;
	for (i = 0; i < 32; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return DK_ERR_PARSE;
		a->hash[i] = (uint8_t)v;
	}
	a->seq = seq;
	a->time = (int64_t)t;
	return 0;
}

/* Every anchor object, and of them the one with the highest seq in *best. */
static int
anchor_find(struct hsm_session *s, CK_OBJECT_HANDLE **objs, CK_ULONG *n,
    struct hsm_audit_anchor *best, CK_OBJECT_HANDLE *best_obj)
{
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, (void *)(uintptr_t)&class_data, sizeof(class_data)},
	    {CKA_APPLICATION, (void *)(uintptr_t)HSM_AUDIT_APPLICATION,
	        strlen(HSM_AUDIT_APPLICATION)},
	    {CKA_LABEL, (void *)(uintptr_t)HSM_AUDIT_ANCHOR_LABEL, strlen(HSM_AUDIT_ANCHOR_LABEL)},
	};
	struct hsm_audit_anchor cur;
	struct dk_buf v;
	CK_ULONG i;
	int r, found = 0;

	dk_buf_init(&v, ANCHOR_MAX);
	if ((r = hsm_find(s, tmpl, 3, objs, n)) != 0)
		goto out;
	for (i = 0; i < *n; i++) {
		dk_buf_reset(&v);
		if ((r = hsm_attr_bytes(s, (*objs)[i], CKA_VALUE, ANCHOR_MAX, &v)) != 0)
			goto out;
		if (anchor_parse(dk_buf_str(&v), &cur) != 0) {
			dk_log_warn("token \"%s\": an audit anchor object cannot be read; ignored",
			    s->t->label);
			continue;
		}
		if (!found || cur.seq > best->seq) {
			*best = cur;
			*best_obj = (*objs)[i];
			found = 1;
		}
	}
	r = found ? 0
	          : dk_err_set(DK_ERR_NOT_FOUND, "token \"%s\" holds no audit anchor", s->t->label);
out:
	dk_buf_free(&v);
	return r;
}

int
hsm_audit_anchor_get(struct hsm_session *s, struct hsm_audit_anchor *out)
{
	CK_OBJECT_HANDLE *objs = NULL, o = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = anchor_find(s, &objs, &n, out, &o);
	free(objs);
	return r;
}

static int
anchor_create(struct hsm_session *s, const struct hsm_audit_anchor *a, CK_OBJECT_HANDLE *out)
{
	struct hsm_tmpl t = {.n = 0};
	char text[ANCHOR_MAX];
	size_t i;
	int n;
	CK_RV rv;

	n = snprintf(text, sizeof(text), "v=1\nseq=%" PRIu64 "\nhash=", a->seq);
	for (i = 0; i < 32 && n > 0 && (size_t)n + 3 < sizeof(text); i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%02x", a->hash[i]);
	if (n > 0 && (size_t)n < sizeof(text))
		n += snprintf(
		    text + n, sizeof(text) - (size_t)n, "\ntime=%lld\n", (long long)a->time);
	if (n <= 0 || (size_t)n >= sizeof(text))
		return DK_ERR_INTERNAL;
	hsm_tmpl_add(&t, CKA_CLASS, &class_data, sizeof(class_data));
	hsm_tmpl_add(&t, CKA_TOKEN, &yes, sizeof(yes));
	/* Private: only the PIN holder reads or replaces it; SoftHSM encrypts it on disk. */
	hsm_tmpl_add(&t, CKA_PRIVATE, &yes, sizeof(yes));
	hsm_tmpl_add(&t, CKA_MODIFIABLE, &no, sizeof(no));
	hsm_tmpl_add(&t, CKA_APPLICATION, HSM_AUDIT_APPLICATION, strlen(HSM_AUDIT_APPLICATION));
	hsm_tmpl_add(&t, CKA_LABEL, HSM_AUDIT_ANCHOR_LABEL, strlen(HSM_AUDIT_ANCHOR_LABEL));
	hsm_tmpl_add(&t, CKA_VALUE, text, (size_t)n);
	if (t.overflow)
		return DK_ERR_INTERNAL;
	rv = hsm_store_create(s, t.a, t.n, out);
	if (rv != CKR_OK)
		return hsm_fail(
		    rv, "token \"%s\": writing the audit anchor (C_CreateObject)", s->t->label);
	return 0;
}

int
hsm_audit_anchor_set(struct hsm_session *s, const struct hsm_audit_anchor *a)
{
	CK_OBJECT_HANDLE *objs = NULL, o = CK_INVALID_HANDLE, best_obj = CK_INVALID_HANDLE;
	struct hsm_audit_anchor best;
	CK_ULONG n = 0, i;
	int r;

	r = anchor_find(s, &objs, &n, &best, &best_obj);
	if (r != 0 && r != DK_ERR_NOT_FOUND)
		goto out;
	/* Data objects cannot be changed in SoftHSM: write the new one, then remove the old. */
	if ((r = anchor_create(s, a, &o)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (hsm_destroy(s, objs[i], "an old audit anchor") != 0)
			dk_log_warn("%s; it is removed with the next checkpoint", dk_err_detail());
	}
	r = 0;
out:
	free(objs);
	return r;
}
