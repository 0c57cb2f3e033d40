/*
 * dkim.h - pure DKIM: message header parsing, canonicalization (RFC 6376
 * §3.4), body hashing and DKIM-Signature assembly (RFC 6376 §3.5, RFC 8301,
 * RFC 8463).
 *
 * No I/O, no globals, no PKCS#11.  The caller hands the 32-byte digest from
 * dkim_hash_headers() to the signer and the signature back to
 * dkim_sig_finish().  Errors are dk_err codes.
 */
#ifndef DKIM_H
#define DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "common/dk_buf.h"

#define DKIM_HEADER_SECTION_MAX (1024 * 1024) /* bytes, after LF -> CRLF */
#define DKIM_HEADER_COUNT_MAX   1000          /* header fields in a message */
#define DKIM_HEADER_NAME_MAX    128           /* bytes in a field name */
#define DKIM_HLIST_MAX          64            /* names in an h= list */
#define DKIM_DIGEST_LEN         32            /* SHA-256 */
#define DKIM_DOMAIN_MAX         253
#define DKIM_SIG_FIELD_NAME     "DKIM-Signature"
#define DKIM_SIG_COLS           78    /* columns a line of the field may take */
#define DKIM_SIG_VALUE_MAX      32768 /* a value_out of this max always suffices */

enum dkim_alg {
	DKIM_ALG_RSA_SHA256 = 1,
	DKIM_ALG_ED25519_SHA256 = 2,
};

enum dkim_canon {
	DKIM_CANON_SIMPLE = 0,
	DKIM_CANON_RELAXED = 1,
};

/* "rsa-sha256" / "ed25519-sha256"; never rsa-sha1 (RFC 8301).  NULL if unknown. */
const char *dkim_alg_name(enum dkim_alg alg);
/* Parse an algorithm name; DK_ERR_INVALID for anything else. */
int dkim_alg_parse(const char *name, enum dkim_alg *alg);
/* "rsa" / "ed25519", the k= value and the {alg} of selector templates; NULL if unknown. */
const char *dkim_alg_keytype(enum dkim_alg alg);

/* One header field as it appears in the message. */
struct dkim_field {
	const char *name; /* points into raw; not NUL-terminated */
	size_t name_len;
	const char *raw; /* whole field: name, colon, value, continuation lines */
	size_t raw_len;  /* without the final CRLF; inner line ends are CRLF */
};

struct dkim_headers {
	struct dkim_field *fields;
	size_t n;
	char *storage; /* owned copy of the section with line ends as CRLF */
	size_t storage_len;
};

/*
 * Find the end of the header section in the first len bytes of a message.
 * On success *hdr_len is the length of the header section including its
 * last line end, *body_off where the body starts (after the empty line).
 * DK_ERR_NOT_FOUND: no empty line yet (need more data, or the message has
 * no body: then the whole input is the header section).
 * DK_ERR_MSG_NOT_MESSAGE: the input starts with an empty line.
 */
int dkim_header_end(const uint8_t *msg, size_t len, size_t *hdr_len, size_t *body_off);

/*
 * Parse a header section (CRLF or bare LF line ends; a trailing empty line
 * is allowed, nothing may follow it) into fields.  A field name is ftext
 * (RFC 5322 §3.6.8), optionally followed by WSP before the colon; name_len
 * excludes that WSP.  Errors: DK_ERR_MSG_EMPTY, DK_ERR_MSG_NOT_MESSAGE
 * (first line is not a field: blank, white space first, no colon),
 * DK_ERR_MSG_BAD_HEADER (a later line with no colon, a bad or too long
 * field name, NUL or bare CR bytes, data after the empty line),
 * DK_ERR_MSG_HEADER_TOO_LARGE (over DKIM_HEADER_SECTION_MAX with CRLF line
 * ends, the empty line not counted), DK_ERR_MSG_TOO_MANY_HEADERS,
 * DK_ERR_NOMEM.  On error *out is empty.  Free with dkim_headers_free().
 */
int dkim_headers_parse(const uint8_t *data, size_t len, struct dkim_headers *out);
void dkim_headers_free(struct dkim_headers *h);

/*
 * The domain of the single From address, lower-cased, into dom (size >
 * DKIM_DOMAIN_MAX).  Display names, quoted strings and comments are
 * skipped; a From with several mailboxes is accepted only when they share
 * one domain.  The domain must be letters, digits, '-' and '.' (no domain
 * literals, no UTF-8).  Errors: DK_ERR_MSG_NO_FROM, DK_ERR_MSG_MULTI_FROM
 * (two From fields, or mailboxes in two domains), DK_ERR_MSG_BAD_HEADER
 * (no parsable address), DK_ERR_INVALID (domlen too small).
 */
int dkim_from_domain(const struct dkim_headers *h, char *dom, size_t domlen);

/*
 * Append the canonical form of one header field (raw as in dkim_field),
 * followed by CRLF, to out (RFC 6376 §3.4.1, §3.4.2).  Errors:
 * DK_ERR_PARSE (relaxed: no colon), DK_ERR_INVALID, DK_ERR_TOO_LARGE.
 */
int dkim_canon_header(enum dkim_canon c, const char *raw, size_t raw_len, struct dk_buf *out);

/*
 * Streaming body canonicalization and SHA-256 (RFC 6376 §3.4.3-§3.4.5).
 * Nothing of the body is buffered.  A bare LF ends a line as CRLF does; a
 * CR not followed by LF is data and is hashed as is.  Under relaxed, white
 * space at the end of an unterminated last line is dropped too (it becomes
 * a line end in transit).
 */
struct dkim_body {
	void *md; /* EVP_MD_CTX */
	enum dkim_canon canon;
	uint64_t crlf_pending; /* empty lines held back (trailing ones are dropped) */
	int wsp_pending;       /* relaxed: white space held back */
	int cr_pending;        /* last byte seen was CR */
	int line_has_data;     /* current line has content */
	int any_data;          /* any non-empty line emitted */
};

int dkim_body_init(struct dkim_body *b, enum dkim_canon c);
/* Feed body bytes in any chunking; bare LF is treated as CRLF. */
int dkim_body_update(struct dkim_body *b, const uint8_t *data, size_t len);
/* Finish and write the 32-byte hash; frees the state. */
int dkim_body_final(struct dkim_body *b, uint8_t digest[DKIM_DIGEST_LEN]);
/* Free the state without a result (safe after final). */
void dkim_body_free(struct dkim_body *b);

/* What goes into one DKIM-Signature. */
struct dkim_sig_params {
	enum dkim_alg alg;
	enum dkim_canon hcanon, bcanon;
	const char *domain;   /* d= */
	const char *selector; /* s= */
	const char *identity; /* i=, or NULL */
	int64_t timestamp;    /* t=, or -1 for none */
	int64_t expire;       /* x = t + expire when > 0 (needs t) */
	const char *headers;  /* colon list of names to sign when present */
	const char *oversign; /* colon list of names signed once more than present */
	uint8_t bh[DKIM_DIGEST_LEN];
};

/*
 * Build the DKIM-Signature value (without the "DKIM-Signature:" name) with
 * an empty b= as the last tag, folded with CRLF + TAB so that no line of
 * the field takes more than DKIM_SIG_COLS columns (a fold's TAB counted as
 * 8; so no more than DKIM_SIG_COLS characters either), into value_out (reset
 * first).  The value starts with one SP: the field to emit and to hash is
 * exactly DKIM_SIG_FIELD_NAME ":" followed by the value, nothing between.
 * Tags: v= a= c= d= s= [i=] [t=] [x=] h= bh= b=.  h= holds each name of
 * params->headers (lower-cased, duplicates ignored) as many times as it
 * occurs in h, and each name of params->oversign once more (RFC 6376
 * §5.4.2); From is always signed (first, if not listed).  Errors:
 * DK_ERR_INVALID (bad params, a domain or selector with bad characters, an
 * identity not in d= or below it), DK_ERR_MSG_TOO_MANY_HEADERS (h= would
 * hold more than DKIM_HLIST_MAX names), DK_ERR_TOO_LARGE, DK_ERR_NOMEM.
 */
int dkim_sig_build(
    const struct dkim_headers *h, const struct dkim_sig_params *params, struct dk_buf *value_out);

/*
 * The SHA-256 that the key signs: the canonical header fields named in
 * hlist (the h= value, colon-separated, white space allowed), each picked
 * from the bottom up (RFC 6376 §5.4.2; a name with no instance left adds
 * nothing), then the DKIM-Signature field sig_field (its full text,
 * "DKIM-Signature: ... b=" with b= empty) canonicalized without its final
 * CRLF (RFC 6376 §3.7; one CRLF at the end of sig_field is ignored).
 * Errors: DK_ERR_INVALID (empty or too long names, more than
 * DKIM_HLIST_MAX of them, bad canon), DK_ERR_PARSE, DK_ERR_NOMEM.
 */
int dkim_hash_headers(const struct dkim_headers *h, const char *hlist, enum dkim_canon c,
    const char *sig_field, size_t sig_len, uint8_t digest[DKIM_DIGEST_LEN]);

/*
 * Convenience for signers: the value built by dkim_sig_build(), its h= list
 * and header canon, hashed as dkim_hash_headers() does.
 */
int dkim_sig_digest(const struct dkim_headers *h, const struct dkim_sig_params *params,
    const struct dk_buf *value, uint8_t digest[DKIM_DIGEST_LEN]);

/*
 * Append the base64 signature (1 to 1024 bytes) to a value ending in "b=",
 * folded with CRLF + TAB at DKIM_SIG_COLS.  DK_ERR_INVALID otherwise.
 */
int dkim_sig_finish(struct dk_buf *value, const uint8_t *sig, size_t sig_len);

#endif /* DKIM_H */
