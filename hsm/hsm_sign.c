/*
 * hsm_sign.c - signing digests in the token, and the load-time hygiene
 * check of keys.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "hsm/hsm_int.h"

#define SIG_FINISH_MAX 65536 /* largest signature we finish into the heap to end an operation */
#define MECHS_MAX      64    /* entries of CKA_ALLOWED_MECHANISMS we read */

/* RFC 8017 §9.2 note 1: DER of DigestInfo for SHA-256, followed by the 32-byte hash. */
static const uint8_t sha256_digestinfo[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48,
    0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

/*
 * C_Sign said CKR_BUFFER_TOO_SMALL: the operation is still active, and
 * PKCS#11 2.40 has no way to cancel it but to finish it.
 */
static int
sign_too_small(
    struct hsm_session *s, const struct hsm_key *k, uint8_t *data, CK_ULONG len, CK_ULONG need)
{
	uint8_t *big = NULL;
	CK_RV rv;

	if (need > SIG_FINISH_MAX || (big = malloc(need)) == NULL)
		return dk_err_set(DK_ERR_TOKEN_FAILING,
		    "token \"%s\": key %s wants a %lu-byte signature; the session cannot be "
		    "used any more and must be reopened",
		    s->t->label, k->id_hex, (unsigned long)need);
	rv = s->t->m->f->C_Sign(s->h, data, len, big, &need);
	free(big);
	if (rv != CKR_OK)
		return hsm_fail(rv, "token \"%s\": signing with key %s", s->t->label, k->id_hex);
	return dk_err_set(DK_ERR_TOO_LARGE,
	    "token \"%s\": key %s gives %lu-byte signatures, more than the %d dkimkeep accepts",
	    s->t->label, k->id_hex, (unsigned long)need, HSM_SIG_MAX);
}

int
hsm_sign_digest(struct hsm_session *s, const struct hsm_key *k, const uint8_t digest[32],
    uint8_t *sig, size_t *sig_len)
{
	CK_MECHANISM mech = {hsm_key_sign_mech(k->type), NULL, 0};
	uint8_t data[sizeof(sha256_digestinfo) + 32];
	uint8_t out[HSM_SIG_MAX];
	CK_ULONG dlen, olen = sizeof(out);
	CK_RV rv;
	int r;

	if (k->type == HSM_KEY_RSA) {
		memcpy(data, sha256_digestinfo, sizeof(sha256_digestinfo));
		memcpy(data + sizeof(sha256_digestinfo), digest, 32);
		dlen = sizeof(data);
	} else {
		/* RFC 8463 §3: Ed25519 (pure, no prehash) over the SHA-256 of the headers. */
		memcpy(data, digest, 32);
		dlen = 32;
	}
	if ((rv = s->t->m->f->C_SignInit(s->h, &mech, k->priv)) != CKR_OK) {
		r = hsm_fail(rv, "token \"%s\": starting a signature with key %s (C_SignInit)",
		    s->t->label, k->id_hex);
		goto out;
	}
	rv = s->t->m->f->C_Sign(s->h, data, dlen, out, &olen);
	if (rv == CKR_BUFFER_TOO_SMALL) {
		r = sign_too_small(s, k, data, dlen, olen);
		goto out;
	}
	if (rv != CKR_OK) {
		r = hsm_fail(
		    rv, "token \"%s\": signing with key %s (C_Sign)", s->t->label, k->id_hex);
		goto out;
	}
	if (olen > sizeof(out) || olen > *sig_len) {
		r = dk_err_set(DK_ERR_TOO_LARGE, "signature of %lu bytes does not fit in %zu",
		    (unsigned long)olen, *sig_len);
		goto out;
	}
	memcpy(sig, out, olen);
	*sig_len = olen;
	r = 0;
out:
	explicit_bzero(data, sizeof(data));
	return r;
}

/* ---- hygiene ---- */

struct check {
	struct hsm_session *s;
	const struct hsm_key *k;
	char *why;
	size_t whylen;
};

/* Refuse the key: fill why with what is wrong and what to do. */
static int refuse(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
refuse(struct check *c, const char *fmt, ...)
{
	char problem[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problem, sizeof(problem), fmt, ap);
	va_end(ap);
	snprintf(c->why, c->whylen, "key %s._domainkey.%s (id %s) on token \"%s\" is refused: %s",
	    c->k->meta.selector, c->k->meta.domain, c->k->id_hex, c->s->t->label, problem);
	return dk_err_set(DK_ERR_KEY_HYGIENE, "%s", c->why);
}

enum {
	A_SENSITIVE,
	A_EXTRACTABLE,
	A_ALWAYS_SENSITIVE,
	A_NEVER_EXTRACTABLE,
	A_DECRYPT,
	A_UNWRAP,
	A_DERIVE,
	A_SIGN,
	A_COUNT
};

static int
check_attributes(struct check *c)
{
	static const CK_ATTRIBUTE_TYPE types[A_COUNT] = {CKA_SENSITIVE, CKA_EXTRACTABLE,
	    CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE,
	    CKA_SIGN};
	CK_BBOOL v[A_COUNT];
	CK_ATTRIBUTE a[A_COUNT];
	const char *what = "generate a new key (dkimkeep key generate) and destroy this one";
	CK_RV rv;
	int i, present[A_COUNT];

	for (i = 0; i < A_COUNT; i++) {
		v[i] = CK_FALSE;
		a[i] = (CK_ATTRIBUTE){types[i], &v[i], sizeof(v[i])};
	}
	rv = c->s->t->m->f->C_GetAttributeValue(c->s->h, c->k->priv, a, A_COUNT);
	/* Attributes the token lacks come back unavailable; the others are still filled. */
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID)
		return hsm_fail(rv, "token \"%s\": reading the attributes of key %s",
		    c->s->t->label, c->k->id_hex);
	for (i = 0; i < A_COUNT; i++)
		present[i] = a[i].ulValueLen == sizeof(CK_BBOOL);
	if (!present[A_SENSITIVE] || !v[A_SENSITIVE])
		return refuse(
		    c, "the private key is not sensitive (CKA_SENSITIVE false); %s", what);
	if (!present[A_EXTRACTABLE] || v[A_EXTRACTABLE])
		return refuse(c, "the private key is extractable (CKA_EXTRACTABLE true); %s", what);
	if (present[A_DECRYPT] && v[A_DECRYPT])
		return refuse(c, "the private key may decrypt (CKA_DECRYPT true); %s", what);
	if (present[A_UNWRAP] && v[A_UNWRAP])
		return refuse(c, "the private key may unwrap (CKA_UNWRAP true); %s", what);
	if (present[A_DERIVE] && v[A_DERIVE])
		return refuse(c, "the private key may derive (CKA_DERIVE true); %s", what);
	if (!present[A_SIGN] || !v[A_SIGN])
		return refuse(c, "the private key may not sign (CKA_SIGN false); %s", what);
	if (!v[A_ALWAYS_SENSITIVE] || !v[A_NEVER_EXTRACTABLE])
		dk_log_info(
		    "key %s._domainkey.%s (id %s) was imported or once readable "
		    "(CKA_ALWAYS_SENSITIVE/CKA_NEVER_EXTRACTABLE false): it is only as safe "
		    "as the PEM file it came from",
		    c->k->meta.selector, c->k->meta.domain, c->k->id_hex);
	return 0;
}

/*
 * One C_GetAttributeValue into a fixed array, not a size query first: through
 * p11-kit's RPC (p11-kit-client.so, 0.24.1 in Debian 12) the size query of
 * CKA_ALLOWED_MECHANISMS fails with CKR_DEVICE_ERROR while a read into a
 * buffer works (measured).  A list longer than MECHS_MAX is refused.
 */
static int
check_mechanisms(struct check *c)
{
	CK_MECHANISM_TYPE want = hsm_key_sign_mech(c->k->type);
	CK_MECHANISM_TYPE mechs[MECHS_MAX];
	CK_ATTRIBUTE a = {CKA_ALLOWED_MECHANISMS, mechs, sizeof(mechs)};
	CK_RV rv;
	size_t i;

	rv = c->s->t->m->f->C_GetAttributeValue(c->s->h, c->k->priv, &a, 1);
	/* No list: every mechanism allowed, ours too. */
	if (rv == CKR_ATTRIBUTE_TYPE_INVALID ||
	    (rv == CKR_OK && a.ulValueLen == CK_UNAVAILABLE_INFORMATION))
		return 0;
	if (rv == CKR_BUFFER_TOO_SMALL)
		return refuse(
		    c, "its CKA_ALLOWED_MECHANISMS lists more than %d mechanisms", MECHS_MAX);
	if (rv != CKR_OK)
		return hsm_fail(rv, "token \"%s\": reading CKA_ALLOWED_MECHANISMS of object %lu",
		    c->s->t->label, (unsigned long)c->k->priv);
	if (a.ulValueLen > sizeof(mechs))
		return dk_err_set(DK_ERR_PKCS11,
		    "token \"%s\": CKA_ALLOWED_MECHANISMS overran its buffer", c->s->t->label);
	if (a.ulValueLen == 0)
		return 0; /* as before: an empty list is read as no list */
	for (i = 0; i < a.ulValueLen / sizeof(mechs[0]); i++)
		if (mechs[i] == want)
			return 0;
	return refuse(c, "its CKA_ALLOWED_MECHANISMS does not include %s; import it again",
	    c->k->type == HSM_KEY_RSA ? "CKM_RSA_PKCS" : "CKM_EDDSA");
}

static int
check_size(struct check *c, int *weak)
{
	CK_ULONG kt = 0;
	int r;

	if ((r = hsm_attr_ulong(c->s, c->k->priv, CKA_KEY_TYPE, &kt)) != 0)
		return r;
	if ((c->k->type == HSM_KEY_RSA && kt != CKK_RSA) ||
	    (c->k->type == HSM_KEY_ED25519 && kt != CKK_EC_EDWARDS))
		return refuse(c, "the private key has key type 0x%lx, not what its metadata says",
		    (unsigned long)kt);
	if (c->k->type != HSM_KEY_RSA)
		return 0;
	if (c->k->bits < HSM_RSA_MIN_BITS)
		return refuse(c,
		    "RSA with %u bits is too weak to sign (RFC 8301); generate a "
		    "2048-bit key",
		    c->k->bits);
	if (c->k->bits > HSM_RSA_MAX_BITS)
		return refuse(c,
		    "RSA with %u bits is over the %d bits verifiers must support "
		    "(RFC 8301); use 2048 to 4096 bits",
		    c->k->bits, HSM_RSA_MAX_BITS);
	if (c->k->bits < HSM_RSA_WARN_BITS)
		*weak = 1;
	return 0;
}

/* Our signature over a digest; 1 when it verifies with the token's public key. */
static int
verify(EVP_PKEY *pkey, enum hsm_key_type type, const uint8_t *digest, const uint8_t *sig,
    size_t siglen)
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	int ok = 0;

	if (type == HSM_KEY_RSA) {
		ok = (pctx = EVP_PKEY_CTX_new(pkey, NULL)) != NULL &&
		     EVP_PKEY_verify_init(pctx) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) == 1 &&
		     EVP_PKEY_verify(pctx, sig, siglen, digest, 32) == 1;
	} else {
		ok = (mctx = EVP_MD_CTX_new()) != NULL &&
		     EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pkey) == 1 &&
		     EVP_DigestVerify(mctx, sig, siglen, digest, 32) == 1;
	}
	EVP_PKEY_CTX_free(pctx);
	EVP_MD_CTX_free(mctx);
	return ok;
}

static int
check_pair(struct check *c)
{
	uint8_t digest[32], sig[HSM_SIG_MAX];
	size_t siglen = sizeof(sig);
	EVP_PKEY *pkey = NULL;
	int r;

	if (RAND_bytes(digest, sizeof(digest)) != 1) {
		r = dk_err_set(DK_ERR_INTERNAL, "OpenSSL RAND_bytes failed");
		goto out;
	}
	if ((r = hsm_key_evp(c->s, c->k, &pkey)) != 0)
		goto out;
	if ((r = hsm_sign_digest(c->s, c->k, digest, sig, &siglen)) != 0) {
		if (r == DK_ERR_MECHANISM)
			r = refuse(c, "the token does not let it sign (%s)", dk_err_detail());
		goto out;
	}
	if (!verify(pkey, c->k->type, digest, sig, siglen))
		r = refuse(c, "a test signature does not verify with its public key (the private "
		              "and public key objects do not belong together); destroy it and "
		              "generate or import the key again");
out:
	EVP_PKEY_free(pkey);
	return r;
}

int
hsm_key_check(struct hsm_session *s, const struct hsm_key *k, int *weak, char *why, size_t whylen)
{
	struct check c = {s, k, why, whylen};
	int r;

	*weak = 0;
	if (whylen > 0)
		why[0] = '\0';
	if ((r = check_attributes(&c)) != 0 || (r = check_mechanisms(&c)) != 0 ||
	    (r = check_size(&c, weak)) != 0 || (r = check_pair(&c)) != 0)
		return r;
	return 0;
}
