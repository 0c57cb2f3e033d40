/*
 * hsm_pub.c - public keys out of the token, and PKCS#11 URIs of keys.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <p11-kit/uri.h>

#include "common/dk_err.h"
#include "hsm/hsm_int.h"

#define MODULUS_MAX  1024 /* bytes: 8192 bits, so oversized keys can be named and refused */
#define EXPONENT_MAX 16
#define EC_POINT_MAX 64
#define ED25519_LEN  32

static int
rsa_evp(const struct dk_buf *n, const struct dk_buf *e, EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	int r = DK_ERR_INTERNAL;

	*out = NULL;
	if ((bn = BN_bin2bn(n->data, (int)n->len, NULL)) == NULL ||
	    (be = BN_bin2bn(e->data, (int)e->len, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		r = dk_err_set(DK_ERR_INTERNAL, "OpenSSL cannot build an RSA public key");
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return r;
}

static int
rsa_public(struct hsm_session *s, const struct hsm_key *k, EVP_PKEY **out)
{
	struct dk_buf n, e;
	int r;

	dk_buf_init(&n, MODULUS_MAX);
	dk_buf_init(&e, EXPONENT_MAX);
	if ((r = hsm_attr_bytes(s, k->pub, CKA_MODULUS, MODULUS_MAX, &n)) != 0 ||
	    (r = hsm_attr_bytes(s, k->pub, CKA_PUBLIC_EXPONENT, EXPONENT_MAX, &e)) != 0)
		goto out;
	if (n.len == 0 || e.len == 0) {
		r = dk_err_set(DK_ERR_PARSE, "token \"%s\": RSA key %s has an empty modulus",
		    s->t->label, k->id_hex);
		goto out;
	}
	r = rsa_evp(&n, &e, out);
out:
	dk_buf_free(&n);
	dk_buf_free(&e);
	return r;
}

/*
 * CKA_EC_POINT of an Ed25519 key: PKCS#11 3.0 says the DER OCTET STRING
 * around the 32 bytes (SoftHSM 2.6.1 returns 04 20 <32>); some tokens give
 * the 32 bytes raw.  Accept both, nothing else.
 */
static int
ed25519_raw(struct hsm_session *s, const struct hsm_key *k, uint8_t raw[ED25519_LEN])
{
	struct dk_buf pt;
	int r;

	dk_buf_init(&pt, EC_POINT_MAX);
	if ((r = hsm_attr_bytes(s, k->pub, CKA_EC_POINT, EC_POINT_MAX, &pt)) != 0)
		goto out;
	if (pt.len == ED25519_LEN + 2 && pt.data[0] == 0x04 && pt.data[1] == ED25519_LEN) {
		memcpy(raw, pt.data + 2, ED25519_LEN);
	} else if (pt.len == ED25519_LEN) {
		memcpy(raw, pt.data, ED25519_LEN);
	} else {
		r = dk_err_set(DK_ERR_PARSE,
		    "token \"%s\": Ed25519 key %s has a CKA_EC_POINT of %zu bytes that is neither "
		    "04 20 <32 bytes> nor 32 raw bytes",
		    s->t->label, k->id_hex, pt.len);
		goto out;
	}
	r = 0;
out:
	dk_buf_free(&pt);
	return r;
}

int
hsm_key_evp(struct hsm_session *s, const struct hsm_key *k, EVP_PKEY **out)
{
	uint8_t raw[ED25519_LEN];
	int r;

	*out = NULL;
	if (k->type == HSM_KEY_RSA)
		return rsa_public(s, k, out);
	if ((r = ed25519_raw(s, k, raw)) != 0)
		return r;
	if ((*out = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, ED25519_LEN)) == NULL)
		return dk_err_set(DK_ERR_INTERNAL, "OpenSSL cannot build an Ed25519 public key");
	return 0;
}

int
hsm_key_public(struct hsm_session *s, const struct hsm_key *k, struct dk_buf *out)
{
	uint8_t raw[ED25519_LEN];
	EVP_PKEY *pkey = NULL;
	unsigned char *der = NULL;
	int r, len;

	if (k->type == HSM_KEY_ED25519) {
		if ((r = ed25519_raw(s, k, raw)) != 0)
			return r;
		return dk_buf_put(out, raw, ED25519_LEN);
	}
	if ((r = rsa_public(s, k, &pkey)) != 0)
		goto out;
	/* RFC 6376 §3.6.1: p= is the DER SubjectPublicKeyInfo of the RSA key. */
	if ((len = i2d_PUBKEY(pkey, &der)) <= 0) {
		r = dk_err_set(
		    DK_ERR_INTERNAL, "OpenSSL cannot encode the public key of key %s", k->id_hex);
		goto out;
	}
	r = dk_buf_put(out, der, (size_t)len);
out:
	OPENSSL_free(der);
	EVP_PKEY_free(pkey);
	return r;
}

int
hsm_key_uri(const struct hsm_token *t, const struct hsm_key *k, struct dk_buf *out)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	char label[HSM_KEY_LABEL_MAX + 1];
	CK_ATTRIBUTE a;
	CK_TOKEN_INFO *ti;
	P11KitUri *uri = NULL;
	char *s = NULL;
	int r;

	if ((uri = p11_kit_uri_new()) == NULL)
		return DK_ERR_NOMEM;
	ti = p11_kit_uri_get_token_info(uri);
	memset(ti->label, ' ', sizeof(ti->label));
	memcpy(ti->label, t->label, strlen(t->label));
	memset(ti->serialNumber, ' ', sizeof(ti->serialNumber));
	memcpy(ti->serialNumber, t->serial, strlen(t->serial));
	a = (CK_ATTRIBUTE){CKA_ID, (void *)(uintptr_t)k->id, HSM_KEY_ID_LEN};
	if (p11_kit_uri_set_attribute(uri, &a) != P11_KIT_URI_OK) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	a = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
	if (p11_kit_uri_set_attribute(uri, &a) != P11_KIT_URI_OK) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if (hsm_key_label(&k->meta, label, sizeof(label)) == 0) {
		a = (CK_ATTRIBUTE){CKA_LABEL, label, strlen(label)};
		if (p11_kit_uri_set_attribute(uri, &a) != P11_KIT_URI_OK) {
			r = DK_ERR_NOMEM;
			goto out;
		}
	}
	if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, &s) != P11_KIT_URI_OK) {
		r = dk_err_set(
		    DK_ERR_INTERNAL, "p11-kit cannot format the URI of key %s", k->id_hex);
		goto out;
	}
	r = dk_buf_puts(out, s);
out:
	free(s);
	p11_kit_uri_free(uri);
	return r;
}
