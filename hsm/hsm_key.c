/*
 * hsm_key.c - key pair generation, metadata changes and destruction.
 *
 * Every attribute that matters is set explicitly: SoftHSM's defaults make
 * a key readable (CKA_SENSITIVE false, CKA_EXTRACTABLE true) and let it
 * decrypt and unwrap (PKCS11-NOTES.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "hsm/hsm_int.h"

const uint8_t hsm_ed25519_oid[5] = {0x06, 0x03, 0x2b, 0x65, 0x70};

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static const CK_OBJECT_CLASS class_private = CKO_PRIVATE_KEY, class_public = CKO_PUBLIC_KEY;
static const CK_KEY_TYPE keytype_rsa = CKK_RSA, keytype_ed25519 = CKK_EC_EDWARDS;
/* RSA: CKM_RSA_PKCS over our own DigestInfo, or the token hashing (other tools). */
static const CK_MECHANISM_TYPE mechs_rsa[] = {CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS};
static const CK_MECHANISM_TYPE mechs_ed25519[] = {CKM_EDDSA};
static const uint8_t rsa_e65537[] = {0x01, 0x00, 0x01};

void
hsm_tmpl_add(struct hsm_tmpl *t, CK_ATTRIBUTE_TYPE type, const void *value, size_t len)
{
	if (t->n >= HSM_TMPL_MAX) {
		t->overflow = 1;
		return;
	}
	t->a[t->n].type = type;
	/* PKCS#11 templates take void *; the module only reads them. */
	t->a[t->n].pValue = (void *)(uintptr_t)value;
	t->a[t->n].ulValueLen = (CK_ULONG)len;
	t->n++;
}

static const CK_KEY_TYPE *
key_type_value(enum hsm_key_type type)
{
	return type == HSM_KEY_RSA ? &keytype_rsa : &keytype_ed25519;
}

CK_MECHANISM_TYPE
hsm_key_sign_mech(enum hsm_key_type type)
{
	return type == HSM_KEY_RSA ? CKM_RSA_PKCS : CKM_EDDSA;
}

void
hsm_tmpl_private(
    struct hsm_tmpl *t, enum hsm_key_type type, const uint8_t id[HSM_KEY_ID_LEN], const char *label)
{
	hsm_tmpl_add(t, CKA_CLASS, &class_private, sizeof(class_private));
	hsm_tmpl_add(t, CKA_KEY_TYPE, key_type_value(type), sizeof(CK_KEY_TYPE));
	hsm_tmpl_add(t, CKA_TOKEN, &yes, sizeof(yes));
	hsm_tmpl_add(t, CKA_PRIVATE, &yes, sizeof(yes));
	hsm_tmpl_add(t, CKA_SENSITIVE, &yes, sizeof(yes));
	hsm_tmpl_add(t, CKA_EXTRACTABLE, &no, sizeof(no));
	hsm_tmpl_add(t, CKA_SIGN, &yes, sizeof(yes));
	hsm_tmpl_add(t, CKA_SIGN_RECOVER, &no, sizeof(no));
	hsm_tmpl_add(t, CKA_DECRYPT, &no, sizeof(no));
	hsm_tmpl_add(t, CKA_UNWRAP, &no, sizeof(no));
	hsm_tmpl_add(t, CKA_DERIVE, &no, sizeof(no));
	/* Not modifiable: SoftHSM would otherwise let anyone with the PIN turn CKA_DECRYPT on. */
	hsm_tmpl_add(t, CKA_MODIFIABLE, &no, sizeof(no));
	if (type == HSM_KEY_RSA)
		hsm_tmpl_add(t, CKA_ALLOWED_MECHANISMS, mechs_rsa, sizeof(mechs_rsa));
	else
		hsm_tmpl_add(t, CKA_ALLOWED_MECHANISMS, mechs_ed25519, sizeof(mechs_ed25519));
	hsm_tmpl_add(t, CKA_ID, id, HSM_KEY_ID_LEN);
	hsm_tmpl_add(t, CKA_LABEL, label, strlen(label));
}

void
hsm_tmpl_public(
    struct hsm_tmpl *t, enum hsm_key_type type, const uint8_t id[HSM_KEY_ID_LEN], const char *label)
{
	hsm_tmpl_add(t, CKA_CLASS, &class_public, sizeof(class_public));
	hsm_tmpl_add(t, CKA_KEY_TYPE, key_type_value(type), sizeof(CK_KEY_TYPE));
	hsm_tmpl_add(t, CKA_TOKEN, &yes, sizeof(yes));
	hsm_tmpl_add(t, CKA_PRIVATE, &no, sizeof(no));
	hsm_tmpl_add(t, CKA_VERIFY, &yes, sizeof(yes));
	hsm_tmpl_add(t, CKA_VERIFY_RECOVER, &no, sizeof(no));
	hsm_tmpl_add(t, CKA_ENCRYPT, &no, sizeof(no));
	hsm_tmpl_add(t, CKA_WRAP, &no, sizeof(no));
	hsm_tmpl_add(t, CKA_DERIVE, &no, sizeof(no));
	hsm_tmpl_add(t, CKA_MODIFIABLE, &no, sizeof(no));
	hsm_tmpl_add(t, CKA_ID, id, HSM_KEY_ID_LEN);
	hsm_tmpl_add(t, CKA_LABEL, label, strlen(label));
}

/* The metadata must name the algorithm of the key it sits beside. */
static int
meta_check(enum hsm_key_type type, const struct hsm_key_meta *meta)
{
	int r;

	if ((r = hsm_meta_valid(meta)) != 0)
		return r;
	if ((type == HSM_KEY_RSA) != (strcmp(meta->alg, "rsa-sha256") == 0))
		return dk_err_set(DK_ERR_INVALID, "algorithm %s does not fit a %s key", meta->alg,
		    type == HSM_KEY_RSA ? "RSA" : "Ed25519");
	return 0;
}

int
hsm_key_finish(struct hsm_session *s, enum hsm_key_type type, unsigned bits,
    const uint8_t id[HSM_KEY_ID_LEN], CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
    const struct hsm_key_meta *meta, struct hsm_key *out)
{
	CK_OBJECT_HANDLE data = CK_INVALID_HANDLE;
	int r;

	if ((r = hsm_meta_create(s, id, meta, 0, &data)) != 0) {
		/* Nothing half-made stays behind; the metadata error is the one reported. */
		(void)hsm_store_destroy(s, priv);
		(void)hsm_store_destroy(s, pub);
		return r;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out->id, id, HSM_KEY_ID_LEN);
	hsm_id_hex(id, out->id_hex);
	out->type = type;
	out->bits = bits;
	out->priv = priv;
	out->pub = pub;
	out->data = data;
	out->meta = *meta;
	return 0;
}

static int
generate_pair(struct hsm_session *s, enum hsm_key_type type, CK_ULONG bits,
    const uint8_t id[HSM_KEY_ID_LEN], const char *label, CK_OBJECT_HANDLE *priv,
    CK_OBJECT_HANDLE *pub)
{
	struct hsm_tmpl tpriv = {.n = 0}, tpub = {.n = 0};
	CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	CK_RV rv;

	hsm_tmpl_private(&tpriv, type, id, label);
	hsm_tmpl_public(&tpub, type, id, label);
	if (type == HSM_KEY_RSA) {
		hsm_tmpl_add(&tpub, CKA_MODULUS_BITS, &bits, sizeof(bits));
		hsm_tmpl_add(&tpub, CKA_PUBLIC_EXPONENT, rsa_e65537, sizeof(rsa_e65537));
	} else {
		mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		hsm_tmpl_add(&tpub, CKA_EC_PARAMS, hsm_ed25519_oid, sizeof(hsm_ed25519_oid));
	}
	if (tpriv.overflow || tpub.overflow)
		return DK_ERR_INTERNAL;
	rv = hsm_store_generate_pair(s, &mech, &tpub, &tpriv, pub, priv);
	if (rv != CKR_OK)
		return hsm_fail(rv,
		    "token \"%s\": generating the %s key pair %s (C_GenerateKeyPair)", s->t->label,
		    type == HSM_KEY_RSA ? "RSA" : "Ed25519", label);
	return 0;
}

int
hsm_key_generate(struct hsm_session *s, enum hsm_key_type type, unsigned bits,
    const struct hsm_key_meta *meta, struct hsm_key *out)
{
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
	char label[HSM_KEY_LABEL_MAX + 1];
	uint8_t id[HSM_KEY_ID_LEN];
	int r;

	if (type != HSM_KEY_RSA && type != HSM_KEY_ED25519)
		return dk_err_set(DK_ERR_INVALID, "unknown key type %d", (int)type);
	if (type == HSM_KEY_RSA && bits != 2048 && bits != 3072 && bits != 4096)
		return dk_err_set(DK_ERR_INVALID,
		    "RSA keys are generated with 2048, 3072 or 4096 bits, not %u (RFC 8301: at "
		    "least 2048; verifiers need not accept more than 4096)",
		    bits);
	if (type == HSM_KEY_ED25519)
		bits = 255;
	if ((r = meta_check(type, meta)) != 0)
		return r;
	if ((r = hsm_key_label(meta, label, sizeof(label))) != 0)
		return r;
	if ((r = hsm_id_new(s, id)) != 0)
		return r;
	if ((r = generate_pair(s, type, bits, id, label, &priv, &pub)) != 0)
		return r;
	return hsm_key_finish(s, type, bits, id, priv, pub, meta, out);
}

int
hsm_key_set_meta(struct hsm_session *s, struct hsm_key *k, const struct hsm_key_meta *meta)
{
	CK_OBJECT_HANDLE data = CK_INVALID_HANDLE;
	struct hsm_key_meta old;
	uint8_t id[HSM_KEY_ID_LEN];
	unsigned long rev = 0;
	int r;

	if ((r = meta_check(k->type, meta)) != 0)
		return r;
	if ((r = hsm_meta_read(s, k->data, id, &old, &rev)) != 0)
		return r;
	if (memcmp(id, k->id, HSM_KEY_ID_LEN) != 0)
		return dk_err_set(DK_ERR_INTERNAL,
		    "token \"%s\": metadata handle of key %s is stale", s->t->label, k->id_hex);
	/*
	 * CKA_VALUE of a data object is read-only in SoftHSM: write the new
	 * record first, then destroy the old one.  A crash in between leaves
	 * two records; hsm_key_list keeps the higher rev and removes the other.
	 */
	if ((r = hsm_meta_create(s, k->id, meta, rev + 1, &data)) != 0)
		return r;
	if ((r = hsm_destroy(s, k->data, "the old metadata object")) != 0)
		dk_log_warn("%s; it is cleaned up on the next key listing", dk_err_detail());
	k->data = data;
	k->meta = *meta;
	return 0;
}

int
hsm_key_destroy(struct hsm_session *s, struct hsm_key *k, int keep_record)
{
	struct hsm_key_meta m;
	int64_t now = (int64_t)time(NULL);
	int r;

	/*
	 * The record says "destroyed" before any object goes: a kill between
	 * the three C_DestroyObject leaves a tombstone that the next rotation
	 * step finishes, never a record of a key that looks alive but cannot
	 * sign (or a key pair nothing describes).
	 */
	if (strcmp(k->meta.state, "destroyed") != 0) {
		m = k->meta;
		snprintf(m.state, sizeof(m.state), "destroyed");
		m.changed = now > m.changed ? now : m.changed + 1;
		if ((r = hsm_key_set_meta(s, k, &m)) != 0)
			return r;
	}
	/* Private key first: once it is gone nothing can sign, whatever happens next. */
	if (k->priv != CK_INVALID_HANDLE && (r = hsm_destroy(s, k->priv, "the private key")) != 0)
		return r;
	k->priv = CK_INVALID_HANDLE;
	if (k->pub != CK_INVALID_HANDLE && (r = hsm_destroy(s, k->pub, "the public key")) != 0)
		return r;
	k->pub = CK_INVALID_HANDLE;
	if (keep_record)
		return 0;
	return hsm_destroy(s, k->data, "the metadata object");
}
