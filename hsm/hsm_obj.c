/*
 * hsm_obj.c - reading attributes and searching objects, with every length
 * from the token checked before anything is allocated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/dk_err.h"
#include "hsm/hsm_int.h"

#define FIND_BATCH 64

int
hsm_attr_bool(struct hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, int *v)
{
	CK_BBOOL b = CK_FALSE;
	CK_ATTRIBUTE a = {type, &b, sizeof(b)};
	CK_RV rv;

	rv = s->t->m->f->C_GetAttributeValue(s->h, o, &a, 1);
	if (rv != CKR_OK)
		return hsm_fail(rv, "token \"%s\": reading attribute 0x%lx of object %lu",
		    s->t->label, (unsigned long)type, (unsigned long)o);
	if (a.ulValueLen != sizeof(b))
		return dk_err_set(DK_ERR_PKCS11,
		    "token \"%s\": boolean attribute 0x%lx has length %lu", s->t->label,
		    (unsigned long)type, (unsigned long)a.ulValueLen);
	*v = b != CK_FALSE;
	return 0;
}

int
hsm_attr_ulong(struct hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, CK_ULONG *v)
{
	CK_ULONG u = 0;
	CK_ATTRIBUTE a = {type, &u, sizeof(u)};
	CK_RV rv;

	rv = s->t->m->f->C_GetAttributeValue(s->h, o, &a, 1);
	if (rv != CKR_OK)
		return hsm_fail(rv, "token \"%s\": reading attribute 0x%lx of object %lu",
		    s->t->label, (unsigned long)type, (unsigned long)o);
	if (a.ulValueLen != sizeof(u))
		return dk_err_set(DK_ERR_PKCS11, "token \"%s\": attribute 0x%lx has length %lu",
		    s->t->label, (unsigned long)type, (unsigned long)a.ulValueLen);
	*v = u;
	return 0;
}

int
hsm_attr_bytes(struct hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, size_t max,
    struct dk_buf *out)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
	CK_FUNCTION_LIST_PTR f = s->t->m->f;
	size_t start = out->len, room;
	CK_RV rv;
	int r;

	/*
	 * One call into room for max bytes first: a key listing reads a few
	 * attributes of every key at every rotation step, and through a remote
	 * module each call is a round trip.  Only a value that does not fit
	 * (CKR_BUFFER_TOO_SMALL) or a buffer that cannot grow that far takes the
	 * size query below.
	 */
	rv = CKR_BUFFER_TOO_SMALL;
	if (dk_buf_reserve(out, max) == 0) {
		a.pValue = out->data + start;
		a.ulValueLen = (CK_ULONG)max;
		rv = f->C_GetAttributeValue(s->h, o, &a, 1);
		if (rv == CKR_OK && a.ulValueLen != CK_UNAVAILABLE_INFORMATION &&
		    a.ulValueLen <= max) {
			out->len = start + a.ulValueLen;
			out->data[out->len] = '\0';
			return 0;
		}
	}
	if (rv == CKR_BUFFER_TOO_SMALL || rv == CKR_OK) {
		a.pValue = NULL;
		a.ulValueLen = 0;
		rv = f->C_GetAttributeValue(s->h, o, &a, 1);
	}
	if (rv == CKR_ATTRIBUTE_TYPE_INVALID ||
	    (rv == CKR_OK && a.ulValueLen == CK_UNAVAILABLE_INFORMATION))
		return dk_err_set(DK_ERR_NOT_FOUND,
		    "token \"%s\": object %lu has no attribute 0x%lx", s->t->label,
		    (unsigned long)o, (unsigned long)type);
	if (rv != CKR_OK)
		return hsm_fail(rv, "token \"%s\": reading attribute 0x%lx of object %lu",
		    s->t->label, (unsigned long)type, (unsigned long)o);
	if (a.ulValueLen > max)
		return dk_err_set(DK_ERR_TOO_LARGE,
		    "token \"%s\": attribute 0x%lx of object %lu has %lu bytes (limit %zu)",
		    s->t->label, (unsigned long)type, (unsigned long)o, (unsigned long)a.ulValueLen,
		    max);
	room = a.ulValueLen;
	if ((r = dk_buf_reserve(out, room)) != 0)
		return r;
	a.pValue = out->data + start;
	rv = f->C_GetAttributeValue(s->h, o, &a, 1);
	if (rv != CKR_OK)
		return hsm_fail(rv, "token \"%s\": reading attribute 0x%lx of object %lu",
		    s->t->label, (unsigned long)type, (unsigned long)o);
	if (a.ulValueLen > room)
		return dk_err_set(DK_ERR_PKCS11, "token \"%s\": attribute 0x%lx overran its buffer",
		    s->t->label, (unsigned long)type);
	out->len = start + a.ulValueLen;
	out->data[out->len] = '\0';
	return 0;
}

int
hsm_find(
    struct hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE **objs, CK_ULONG *count)
{
	CK_FUNCTION_LIST_PTR f = s->t->m->f;
	CK_OBJECT_HANDLE *list = NULL, *nl;
	CK_ULONG got = 0, cap = 0, batch;
	CK_RV rv;
	int r;

	*objs = NULL;
	*count = 0;
	if ((rv = f->C_FindObjectsInit(s->h, tmpl, n)) != CKR_OK)
		return hsm_fail(rv, "token \"%s\": C_FindObjectsInit", s->t->label);
	for (;;) {
		if (got + FIND_BATCH > cap) {
			if (cap >= HSM_OBJECTS_MAX) {
				r = dk_err_set(DK_ERR_TOO_LARGE,
				    "token \"%s\": more than %d objects match one search",
				    s->t->label, HSM_OBJECTS_MAX);
				goto out;
			}
			cap += 8 * FIND_BATCH;
			if ((nl = reallocarray(list, cap, sizeof(*list))) == NULL) {
				r = DK_ERR_NOMEM;
				goto out;
			}
			list = nl;
		}
		batch = 0;
		rv = f->C_FindObjects(s->h, list + got, FIND_BATCH, &batch);
		if (rv != CKR_OK) {
			r = hsm_fail(rv, "token \"%s\": C_FindObjects", s->t->label);
			goto out;
		}
		if (batch > FIND_BATCH) {
			r = dk_err_set(
			    DK_ERR_PKCS11, "token \"%s\": C_FindObjects overran", s->t->label);
			goto out;
		}
		if (batch == 0)
			break;
		got += batch;
	}
	*objs = list;
	*count = got;
	list = NULL;
	r = 0;
out:
	(void)f->C_FindObjectsFinal(s->h);
	free(list);
	return r;
}

int
hsm_destroy(struct hsm_session *s, CK_OBJECT_HANDLE o, const char *what)
{
	CK_RV rv;

	rv = hsm_store_destroy(s, o);
	if (rv == CKR_OK || rv == CKR_OBJECT_HANDLE_INVALID)
		return 0;
	return hsm_fail(rv, "token \"%s\": destroying %s", s->t->label, what);
}

void
hsm_id_hex(const uint8_t id[HSM_KEY_ID_LEN], char *hex)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < HSM_KEY_ID_LEN; i++) {
		hex[2 * i] = digits[id[i] >> 4];
		hex[2 * i + 1] = digits[id[i] & 0xf];
	}
	hex[2 * HSM_KEY_ID_LEN] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
hsm_id_parse(const char *hex, size_t len, uint8_t id[HSM_KEY_ID_LEN])
{
	size_t i;
	int hi, lo;

	if (len != 2 * HSM_KEY_ID_LEN)
		return DK_ERR_PARSE;
	for (i = 0; i < HSM_KEY_ID_LEN; i++) {
		hi = hexval(hex[2 * i]);
		lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return DK_ERR_PARSE;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int
hsm_id_new(struct hsm_session *s, uint8_t id[HSM_KEY_ID_LEN])
{
	CK_ATTRIBUTE a = {CKA_ID, id, HSM_KEY_ID_LEN};
	CK_OBJECT_HANDLE *objs = NULL;
	CK_ULONG n = 0;
	int r, tries;

	for (tries = 0; tries < 4; tries++) {
		if (RAND_bytes(id, HSM_KEY_ID_LEN) != 1)
			return dk_err_set(DK_ERR_INTERNAL, "OpenSSL RAND_bytes failed");
		if ((r = hsm_find(s, &a, 1, &objs, &n)) != 0)
			return r;
		free(objs);
		if (n == 0)
			return 0;
	}
	return dk_err_set(
	    DK_ERR_INTERNAL, "token \"%s\": no unused random key id found", s->t->label);
}

int
hsm_key_label(const struct hsm_key_meta *meta, char *buf, size_t len)
{
	int n;

	n = snprintf(buf, len, "%s._domainkey.%s", meta->selector, meta->domain);
	if (n < 0 || (size_t)n >= len)
		return dk_err_set(
		    DK_ERR_TOO_LARGE, "key label for %s/%s too long", meta->domain, meta->selector);
	return 0;
}
