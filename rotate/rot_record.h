/*
 * rot_record.h - DKIM key records (RFC 6376 §3.6.1, RFC 8463 §4): the
 * name and value a key is published under, a bounded parser for what DNS
 * serves, their comparison, and the names of new selectors.
 */
#ifndef ROT_RECORD_H
#define ROT_RECORD_H

#include <stddef.h>
#include <time.h>

#include "common/dk_buf.h"
#include "hsm/hsm.h"

#define ROT_REC_VALUE_MAX 4096 /* bytes of one TXT value; an RSA-4096 p= is about 740 */
#define ROT_REC_NAME_MAX  (HSM_SELECTOR_MAX + 12 + HSM_DOMAIN_MAX)
#define ROT_DNS_CHUNK     255 /* RFC 1035 §3.3: one character-string */

/* "SELECTOR._domainkey.DOMAIN" into out. */
int rot_rec_name(const struct hsm_key_meta *meta, struct dk_buf *out);

/*
 * The TXT value of key k: "v=DKIM1; k=rsa; p=<base64 SPKI>" or
 * "v=DKIM1; k=ed25519; p=<base64 of 32 bytes>"; with revoked, an empty
 * p= (RFC 6376 §3.6.1).  The public key is read from the token.
 */
int rot_rec_value(struct hsm_session *s, const struct hsm_key *k, int revoked, struct dk_buf *out);

/* A key record as DNS serves it, parsed as an RFC 6376 §3.2 tag-list. */
struct rot_rec {
	char v[16];      /* v= ("" when absent) */
	char k[16];      /* k= ("rsa" when absent, RFC 6376 §3.6.1) */
	int testing;     /* t= holds the flag y (RFC 6376 §3.6.1) */
	struct dk_buf p; /* p= with whitespace removed; empty: revoked */
};

void rot_rec_init(struct rot_rec *r);
void rot_rec_free(struct rot_rec *r);
/*
 * Parse value (len bytes, the strings of one TXT record joined).
 * DK_ERR_PARSE for a value that is not a tag-list, has a tag twice, or a
 * v= other than DKIM1; DK_ERR_TOO_LARGE past ROT_REC_VALUE_MAX.
 */
int rot_rec_parse(const char *value, size_t len, struct rot_rec *out);

enum rot_match {
	ROT_MATCH = 0,     /* the same k= and p= */
	ROT_WRONG_KEY = 1, /* another public key */
	ROT_WRONG_K = 2,   /* the same key bytes under another k= */
	ROT_REVOKED = 3,   /* p= is empty */
};

/* How served compares with the record we publish (expected, parsed). */
enum rot_match rot_rec_compare(const struct rot_rec *expected, const struct rot_rec *served);

/*
 * Expand a selector template: "{date:FMT}" is the date of now in UTC with
 * the strftime conversions %Y %m %d %H %M %S %j %G %V %U %W %u %%,
 * "{alg}" is alg_word (rsa | ed25519).  suffix ("" or "b", "c", ...) goes
 * right after the last {date:...}, or at the end when there is none.
 * DK_ERR_CONFIG with detail for a template that cannot be expanded.
 */
int rot_selector_expand(const char *tmpl, const char *alg_word, time_t now, const char *suffix,
    char *out, size_t outlen);

#endif /* ROT_RECORD_H */
