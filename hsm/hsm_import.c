/*
 * hsm_import.c - importing a PEM private key into the token.
 *
 * OpenSSL 3 decodes the PEM (PKCS#1 RSA, PKCS#8 RSA or Ed25519, not
 * encrypted); the key's parts go into C_CreateObject templates with the
 * same attributes as generated keys.  Every buffer that held private key
 * material is wiped (BN_clear_free, dk_buf_free, explicit_bzero).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "hsm/hsm_int.h"

#define PEM_MAX      (64 * 1024)
#define RSA_PART_MAX 1024 /* bytes of one RSA component */
#define ED25519_LEN  32

/* Never prompt for a passphrase: encrypted keys are refused. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int
pem_decode(const uint8_t *pem, size_t len, EVP_PKEY **out)
{
	BIO *bio = NULL;
	int r;

	*out = NULL;
	if (len == 0 || len > PEM_MAX)
		return dk_err_set(
		    DK_ERR_TOO_LARGE, "the PEM file is empty or over %d bytes", PEM_MAX);
	if (memmem(pem, len, "ENCRYPTED", 9) != NULL)
		return dk_err_set(DK_ERR_INVALID,
		    "the PEM key is encrypted; decrypt it into a private file first "
		    "(\"openssl pkey -in KEY -out PLAIN\"), import PLAIN, then destroy both");
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return DK_ERR_NOMEM;
	*out = PEM_read_bio_PrivateKey_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
	ERR_clear_error();
	if (*out == NULL) {
		r = dk_err_set(DK_ERR_PARSE,
		    "the file holds no PEM private key that OpenSSL can read (expected "
		    "\"BEGIN RSA PRIVATE KEY\" or \"BEGIN PRIVATE KEY\")");
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	return r;
}

/* Append one RSA component (a BIGNUM parameter of pkey) to buf, at offset *at, *len bytes. */
static int
rsa_part(EVP_PKEY *pkey, const char *name, struct dk_buf *buf, size_t *at, size_t *len)
{
	BIGNUM *bn = NULL;
	int r, n;

	if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1)
		return dk_err_set(DK_ERR_INVALID,
		    "the RSA key lacks its %s part (CRT parameters "
		    "are required)",
		    name);
	n = BN_num_bytes(bn);
	if (n <= 0 || (size_t)n > RSA_PART_MAX) {
		r = dk_err_set(DK_ERR_INVALID, "the RSA key's %s part has %d bytes", name, n);
		goto out;
	}
	if ((r = dk_buf_reserve(buf, (size_t)n)) != 0)
		goto out;
	*at = buf->len;
	*len = (size_t)BN_bn2bin(bn, buf->data + buf->len);
	buf->len += *len;
	r = 0;
out:
	BN_clear_free(bn);
	return r;
}

enum { P_N, P_E, P_D, P_P, P_Q, P_DP, P_DQ, P_QINV, P_COUNT };

static const struct {
	const char *param;
	CK_ATTRIBUTE_TYPE attr;
} rsa_parts[P_COUNT] = {
    {OSSL_PKEY_PARAM_RSA_N, CKA_MODULUS},
    {OSSL_PKEY_PARAM_RSA_E, CKA_PUBLIC_EXPONENT},
    {OSSL_PKEY_PARAM_RSA_D, CKA_PRIVATE_EXPONENT},
    {OSSL_PKEY_PARAM_RSA_FACTOR1, CKA_PRIME_1},
    {OSSL_PKEY_PARAM_RSA_FACTOR2, CKA_PRIME_2},
    {OSSL_PKEY_PARAM_RSA_EXPONENT1, CKA_EXPONENT_1},
    {OSSL_PKEY_PARAM_RSA_EXPONENT2, CKA_EXPONENT_2},
    {OSSL_PKEY_PARAM_RSA_COEFFICIENT1, CKA_COEFFICIENT},
};

static int
rsa_size_ok(EVP_PKEY *pkey, unsigned *bits, int warn)
{
	BIGNUM *extra = NULL;
	int b = EVP_PKEY_get_bits(pkey);

	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR3, &extra) == 1) {
		BN_clear_free(extra);
		return dk_err_set(DK_ERR_INVALID, "multi-prime RSA keys are not supported");
	}
	if (b < HSM_RSA_MIN_BITS)
		return dk_err_set(DK_ERR_INVALID,
		    "the RSA key has %d bits; keys below %d bits are refused (RFC 8301)", b,
		    HSM_RSA_MIN_BITS);
	if (b > HSM_RSA_MAX_BITS)
		return dk_err_set(DK_ERR_INVALID,
		    "the RSA key has %d bits; dkimkeep signs with at most %d (RFC 8301)", b,
		    HSM_RSA_MAX_BITS);
	if (b < HSM_RSA_WARN_BITS && warn)
		dk_log_warn("the imported RSA key has only %d bits: RFC 8301 wants at least %d; "
		            "replace it soon",
		    b, HSM_RSA_WARN_BITS);
	*bits = (unsigned)b;
	return 0;
}

/* Refuse a key whose public half is already in the token (imported twice). */
static int
refuse_duplicate(struct hsm_session *s, CK_ATTRIBUTE *match)
{
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE tmpl[2] = {{CKA_CLASS, &cls, sizeof(cls)}, *match};
	CK_OBJECT_HANDLE *objs = NULL;
	CK_ULONG n = 0;
	int r;

	if ((r = hsm_find(s, tmpl, 2, &objs, &n)) != 0)
		return r;
	free(objs);
	if (n > 0)
		return dk_err_set(DK_ERR_EXISTS,
		    "token \"%s\" already holds this key (imported before?); see \"dkimkeep key "
		    "list\"",
		    s->t->label);
	return 0;
}

/* Create the private then the public object; the private one is removed if the public fails. */
static int
create_pair(struct hsm_session *s, struct hsm_tmpl *tpriv, struct hsm_tmpl *tpub,
    CK_OBJECT_HANDLE *priv, CK_OBJECT_HANDLE *pub)
{
	CK_RV rv;

	if (tpriv->overflow || tpub->overflow)
		return DK_ERR_INTERNAL;
	rv = hsm_store_create(s, tpriv->a, tpriv->n, priv);
	if (rv != CKR_OK)
		return hsm_fail(
		    rv, "token \"%s\": importing the private key (C_CreateObject)", s->t->label);
	rv = hsm_store_create(s, tpub->a, tpub->n, pub);
	if (rv != CKR_OK) {
		(void)hsm_store_destroy(s, *priv);
		return hsm_fail(
		    rv, "token \"%s\": importing the public key (C_CreateObject)", s->t->label);
	}
	return 0;
}

static int
import_rsa(struct hsm_session *s, EVP_PKEY *pkey, const uint8_t id[HSM_KEY_ID_LEN],
    const char *label, CK_OBJECT_HANDLE *priv, CK_OBJECT_HANDLE *pub)
{
	struct hsm_tmpl tpriv = {.n = 0}, tpub = {.n = 0};
	size_t at[P_COUNT], len[P_COUNT];
	struct dk_buf parts;
	CK_ATTRIBUTE mod;
	int r, i;

	/* One buffer for all parts, reserved once so that pointers into it stay valid. */
	dk_buf_init(&parts, P_COUNT * RSA_PART_MAX);
	if ((r = dk_buf_reserve(&parts, parts.max)) != 0)
		goto out;
	for (i = 0; i < P_COUNT; i++) {
		if ((r = rsa_part(pkey, rsa_parts[i].param, &parts, &at[i], &len[i])) != 0)
			goto out;
	}
	mod = (CK_ATTRIBUTE){CKA_MODULUS, parts.data + at[P_N], len[P_N]};
	if ((r = refuse_duplicate(s, &mod)) != 0)
		goto out;
	hsm_tmpl_private(&tpriv, HSM_KEY_RSA, id, label);
	hsm_tmpl_public(&tpub, HSM_KEY_RSA, id, label);
	for (i = 0; i < P_COUNT; i++)
		hsm_tmpl_add(&tpriv, rsa_parts[i].attr, parts.data + at[i], len[i]);
	hsm_tmpl_add(&tpub, CKA_MODULUS, parts.data + at[P_N], len[P_N]);
	hsm_tmpl_add(&tpub, CKA_PUBLIC_EXPONENT, parts.data + at[P_E], len[P_E]);
	r = create_pair(s, &tpriv, &tpub, priv, pub);
out:
	dk_buf_free(&parts);
	return r;
}

static int
import_ed25519(struct hsm_session *s, EVP_PKEY *pkey, const uint8_t id[HSM_KEY_ID_LEN],
    const char *label, CK_OBJECT_HANDLE *priv, CK_OBJECT_HANDLE *pub)
{
	struct hsm_tmpl tpriv = {.n = 0}, tpub = {.n = 0};
	uint8_t seed[ED25519_LEN], point[2 + ED25519_LEN];
	size_t slen = sizeof(seed), plen = ED25519_LEN;
	CK_ATTRIBUTE match;
	int r;

	if (EVP_PKEY_get_raw_private_key(pkey, seed, &slen) != 1 || slen != ED25519_LEN ||
	    EVP_PKEY_get_raw_public_key(pkey, point + 2, &plen) != 1 || plen != ED25519_LEN) {
		r = dk_err_set(DK_ERR_INVALID, "OpenSSL cannot read the Ed25519 key");
		goto out;
	}
	/* CKA_EC_POINT as a DER OCTET STRING, as SoftHSM returns for generated keys. */
	point[0] = 0x04;
	point[1] = ED25519_LEN;
	match = (CK_ATTRIBUTE){CKA_EC_POINT, point, sizeof(point)};
	if ((r = refuse_duplicate(s, &match)) != 0)
		goto out;
	hsm_tmpl_private(&tpriv, HSM_KEY_ED25519, id, label);
	hsm_tmpl_public(&tpub, HSM_KEY_ED25519, id, label);
	/* RFC 8410 private key = the 32-byte seed, which is what CKA_VALUE holds. */
	hsm_tmpl_add(&tpriv, CKA_EC_PARAMS, hsm_ed25519_oid, sizeof(hsm_ed25519_oid));
	hsm_tmpl_add(&tpriv, CKA_VALUE, seed, sizeof(seed));
	hsm_tmpl_add(&tpub, CKA_EC_PARAMS, hsm_ed25519_oid, sizeof(hsm_ed25519_oid));
	hsm_tmpl_add(&tpub, CKA_EC_POINT, point, sizeof(point));
	r = create_pair(s, &tpriv, &tpub, priv, pub);
out:
	explicit_bzero(seed, sizeof(seed));
	return r;
}

/* The key type of a decoded PEM key, and the RSA size check. */
static int
pem_type(EVP_PKEY *pkey, enum hsm_key_type *type, unsigned *bits, int warn)
{
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		*type = HSM_KEY_RSA;
		return rsa_size_ok(pkey, bits, warn);
	}
	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		*type = HSM_KEY_ED25519;
		*bits = 255;
		return 0;
	}
	return dk_err_set(DK_ERR_INVALID, "the PEM key is %s; only RSA and Ed25519 keys sign DKIM",
	    EVP_PKEY_get0_type_name(pkey));
}

int
hsm_pem_key_type(const uint8_t *pem, size_t pem_len, enum hsm_key_type *type, unsigned *bits)
{
	EVP_PKEY *pkey = NULL;
	int r;

	if ((r = pem_decode(pem, pem_len, &pkey)) == 0)
		r = pem_type(pkey, type, bits, 0);
	EVP_PKEY_free(pkey);
	return r;
}

int
hsm_key_import(struct hsm_session *s, const uint8_t *pem, size_t pem_len,
    const struct hsm_key_meta *meta, struct hsm_key *out)
{
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
	char label[HSM_KEY_LABEL_MAX + 1];
	uint8_t id[HSM_KEY_ID_LEN];
	enum hsm_key_type type;
	EVP_PKEY *pkey = NULL;
	unsigned bits = 255;
	int r;

	if ((r = hsm_meta_valid(meta)) != 0 || (r = hsm_key_label(meta, label, sizeof(label))) != 0)
		goto out;
	if ((r = pem_decode(pem, pem_len, &pkey)) != 0)
		goto out;
	if ((r = pem_type(pkey, &type, &bits, 1)) != 0)
		goto out;
	if ((type == HSM_KEY_RSA) != (strcmp(meta->alg, "rsa-sha256") == 0)) {
		r = dk_err_set(DK_ERR_INVALID,
		    "the PEM holds an %s key, which cannot be used for %s",
		    type == HSM_KEY_RSA ? "RSA" : "Ed25519", meta->alg);
		goto out;
	}
	if ((r = hsm_id_new(s, id)) != 0)
		goto out;
	if (type == HSM_KEY_RSA)
		r = import_rsa(s, pkey, id, label, &priv, &pub);
	else
		r = import_ed25519(s, pkey, id, label, &priv, &pub);
	if (r != 0)
		goto out;
	r = hsm_key_finish(s, type, bits, id, priv, pub, meta, out);
out:
	EVP_PKEY_free(pkey);
	return r;
}
