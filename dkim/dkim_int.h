/*
 * dkim_int.h - helpers shared by the files of dkim/ and nothing else.
 * Not part of the public surface: include dkim/dkim.h from outside.
 */
#ifndef DKIM_INT_H
#define DKIM_INT_H

#include <stddef.h>

/* SP or HTAB (RFC 5234 WSP). */
static inline int
dkim_is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* A byte of a field name: printable US-ASCII except colon (RFC 5322 §3.6.8 ftext). */
static inline int
dkim_is_ftext(int c)
{
	return c >= 0x21 && c <= 0x7e && c != ':';
}

static inline int
dkim_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* ASCII case-insensitive equality of two byte strings (field names). */
int dkim_name_eq(const char *a, size_t alen, const char *b, size_t blen);

/*
 * A domain name of letters, digits, '-' and '.' (and '_' when allow_us):
 * labels of 1-63 bytes that neither start nor end with '-', at most
 * DKIM_DOMAIN_MAX bytes in all.
 */
int dkim_domain_ok(const char *s, size_t n, int allow_us);

/*
 * SHA-256, fetched from OpenSSL's default provider once per process.
 * EVP_DigestInit_ex(EVP_sha256()) fetches it again on every call under
 * the provider store's lock, which SoftHSM's own OpenSSL calls in the
 * other workers contend for.  NULL when the fetch failed (EVP_DigestInit_ex
 * then fails: no digest).
 */
struct evp_md_st;
const struct evp_md_st *dkim_sha256(void);

#endif /* DKIM_INT_H */
