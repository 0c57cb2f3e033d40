/*
 * dka_rec.c - building audit records and checkpoints.
 */
#include <ctype.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "audit/dka_rec.h"
#include "common/dk_b64.h"
#include "common/dk_err.h"

int64_t
dka_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
dka_time_format(int64_t us, char *out)
{
	/* The date part changes once a second: formatted again only then (per thread). */
	static _Thread_local time_t cached_secs = (time_t)-1;
	static _Thread_local char date[32];
	time_t secs = (time_t)(us / 1000000);
	long frac = (long)(us % 1000000);
	struct tm tm;

	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	if (secs != cached_secs) {
		gmtime_r(&secs, &tm);
		if (strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) != 19)
			snprintf(date, sizeof(date), "0000-00-00T00:00:00");
		cached_secs = secs;
	}
	memcpy(out, date, 19);
	out[19] = '.';
	for (int i = 25; i >= 20; i--, frac /= 10)
		out[i] = (char)('0' + frac % 10);
	out[26] = 'Z';
	out[27] = '\0';
}

/* n decimal digits at s into *v. */
static int
digits(const char *s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return DK_ERR_PARSE;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

int
dka_time_parse(const char *s, size_t len, int64_t *us)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
	time_t t;

	if (len != 10 && len != 20 && len != DKA_TIME_LEN)
		return DK_ERR_PARSE;
	if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
	    digits(s + 8, 2, &d))
		return DK_ERR_PARSE;
	if (len > 10 && (s[10] != 'T' || digits(s + 11, 2, &h) || s[13] != ':' ||
	                    digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec)))
		return DK_ERR_PARSE;
	if (len == 20 && s[19] != 'Z')
		return DK_ERR_PARSE;
	if (len == DKA_TIME_LEN && (s[19] != '.' || digits(s + 20, 6, &frac) || s[26] != 'Z'))
		return DK_ERR_PARSE;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return DK_ERR_PARSE;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		return DK_ERR_PARSE;
	*us = (int64_t)t * 1000000 + frac;
	return 0;
}

void
dka_hex(const uint8_t *p, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 15];
	}
	out[2 * n] = '\0';
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
dka_unhex(const char *s, size_t slen, uint8_t *out, size_t n)
{
	size_t i;
	int hi, lo;

	if (slen != 2 * n)
		return DK_ERR_PARSE;
	for (i = 0; i < n; i++) {
		hi = hexval(s[2 * i]);
		lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return DK_ERR_PARSE;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/*
 * SHA-256 and HMAC fetched once: OpenSSL 3 looks an algorithm up (under a
 * lock) on every implicit use, which costs more than hashing a record.
 */
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;
static EVP_MAC *hmac_mac;

static void
algs_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

void
dka_line_hash(const uint8_t *line, size_t len, uint8_t out[DKA_HASH_LEN])
{
	pthread_once(&algs_once, algs_fetch);
	if (sha256_md == NULL || EVP_Digest(line, len, out, NULL, sha256_md, NULL) != 1)
		SHA256(line, len, out);
}

void
dka_key_fp(const uint8_t pub[DKA_PUB_LEN], char out[2 * DKA_FP_LEN + 1])
{
	uint8_t h[SHA256_DIGEST_LENGTH];

	SHA256(pub, DKA_PUB_LEN, h);
	dka_hex(h, DKA_FP_LEN, out);
}

int
dka_checkpoint_msg(uint64_t seq, const char *time, const char *head_hex, struct dk_buf *out)
{
	return dk_buf_printf(out, "%s\nseq=%" PRIu64 "\ntime=%s\nhead=%s\n", DKA_CHECKPOINT_TAG,
	    seq, time, head_hex);
}

/* Header field name at p (line start) is name, case-insensitively, followed by ':'. */
static int
field_is(const uint8_t *p, const uint8_t *end, const char *name)
{
	size_t n = strlen(name), i;

	if ((size_t)(end - p) <= n || p[n] != ':')
		return 0;
	for (i = 0; i < n; i++) {
		if (tolower(p[i]) != name[i])
			return 0;
	}
	return 1;
}

int
dka_header_message_id(const uint8_t *hs, size_t len, char *out, size_t outlen)
{
	const uint8_t *p = hs, *end = hs + len, *eol;
	size_t n = 0;

	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		if (!field_is(p, eol, "message-id")) {
			p = eol + 1;
			continue;
		}
		p += sizeof("message-id:") - 1;
		/* The value, and its continuation lines (RFC 5322 §2.2.3 unfolding). */
		for (;;) {
			for (; p < eol; p++) {
				if (*p == '\r')
					continue;
				if (n + 1 >= outlen || n >= DKA_MID_MAX)
					return DK_ERR_TOO_LARGE;
				out[n++] = (char)*p;
			}
			if (eol >= end || eol + 1 >= end || (eol[1] != ' ' && eol[1] != '\t'))
				break;
			p = eol + 1;
			if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
				eol = end;
		}
		out[n] = '\0';
		return 0;
	}
	return DK_ERR_NOT_FOUND;
}

void
dka_mac_hour(int64_t us, char *out)
{
	char t[DKA_TIME_LEN + 1];

	dka_time_format(us, t);
	memcpy(out, t, DKA_HOUR_LEN);
	out[DKA_HOUR_LEN] = '\0';
}

int
dka_hour_key_input(const char *hour, struct dk_buf *out)
{
	int r;

	if ((r = dk_buf_put(out, DKA_MAC_HOUR, sizeof(DKA_MAC_HOUR))) != 0)
		return r;
	return dk_buf_puts(out, hour);
}

int
dka_mac_key(struct dka_mac *m, const uint8_t *key, size_t keylen)
{
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string("digest", (char *)(uintptr_t) "SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};

	dka_mac_free(m);
	pthread_once(&algs_once, algs_fetch);
	if (hmac_mac == NULL || (m->ctx = EVP_MAC_CTX_new(hmac_mac)) == NULL ||
	    EVP_MAC_init(m->ctx, key, keylen, params) != 1) {
		dka_mac_free(m);
		return dk_err_set(DK_ERR_INTERNAL, "OpenSSL HMAC-SHA256 cannot be set up");
	}
	return 0;
}

int
dka_mac(struct dka_mac *m, const uint8_t *data, size_t len, uint8_t out[DKA_MAC_LEN])
{
	size_t outlen = 0;

	/* NULL key: the key given to dka_mac_key again (OpenSSL 3 EVP_MAC_init). */
	if (m->ctx == NULL || EVP_MAC_init(m->ctx, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(m->ctx, data, len) != 1 ||
	    EVP_MAC_final(m->ctx, out, &outlen, DKA_MAC_LEN) != 1 || outlen != DKA_MAC_LEN)
		return dk_err_set(DK_ERR_INTERNAL, "OpenSSL HMAC-SHA256 failed");
	return 0;
}

void
dka_mac_free(struct dka_mac *m)
{
	EVP_MAC_CTX_free(m->ctx); /* clears the key it holds */
	m->ctx = NULL;
}

int
dka_hmac(
    const uint8_t *key, size_t keylen, const uint8_t *data, size_t len, uint8_t out[DKA_MAC_LEN])
{
	struct dka_mac m = {NULL};
	int r;

	if ((r = dka_mac_key(&m, key, keylen)) == 0)
		r = dka_mac(&m, data, len, out);
	dka_mac_free(&m);
	return r;
}

int
dka_mac_input(const char *label, const char *value, size_t len, struct dk_buf *out)
{
	const char *s = value, *e = value + len;
	int r;

	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (strcmp(label, DKA_MAC_MID) == 0 && e - s >= 2 && *s == '<' && e[-1] == '>') {
		s++;
		e--;
	}
	if ((r = dk_buf_put(out, label, strlen(label) + 1)) != 0)
		return r;
	return dk_buf_put(out, s, (size_t)(e - s));
}

void
dka_batch_init(struct dka_batch *b, const struct dka_head *head, uint64_t since_cp)
{
	memset(b, 0, sizeof(*b));
	dk_buf_init(&b->buf, DKA_BATCH_MAX);
	b->head = *head;
	b->since_cp = since_cp;
}

void
dka_batch_free(struct dka_batch *b)
{
	dk_buf_free(&b->buf);
}

struct dk_json *
dka_rec_begin(struct dka_batch *b, const char *event, int64_t us)
{
	char t[DKA_TIME_LEN + 1];

	b->start = b->buf.len;
	b->open = 1;
	dka_time_format(us, t);
	dk_json_init(&b->j, &b->buf);
	dk_json_obj_open(&b->j, NULL);
	dk_json_int(&b->j, "v", DKA_VERSION);
	dk_json_uint(&b->j, "seq", b->head.seq + 1);
	dk_json_str(&b->j, "time", t);
	dk_json_str(&b->j, "event", event);
	return &b->j;
}

int
dka_rec_end(struct dka_batch *b)
{
	char prev[DKA_HASH_HEX + 1];
	size_t len;
	int r;

	if (!b->open)
		return DK_ERR_INTERNAL;
	b->open = 0;
	dka_hex(b->head.hash, DKA_HASH_LEN, prev);
	dk_json_str(&b->j, "prev", prev);
	dk_json_obj_close(&b->j);
	if ((r = dk_json_finish(&b->j)) != 0)
		goto fail;
	len = b->buf.len - b->start;
	if (len + 1 > DKA_LINE_MAX) {
		r = dk_err_set(DK_ERR_TOO_LARGE,
		    "an audit record of %zu bytes is over the %d-byte "
		    "line limit",
		    len, DKA_LINE_MAX);
		goto fail;
	}
	if ((r = dk_buf_putc(&b->buf, '\n')) != 0)
		goto fail;
	dka_line_hash(b->buf.data + b->start, len, b->head.hash);
	b->head.seq++;
	b->nlines++;
	b->since_cp++; /* a checkpoint sets it back to 0 */
	return 0;
fail:
	b->buf.len = b->start;
	if (b->buf.data != NULL)
		b->buf.data[b->buf.len] = '\0';
	return r;
}

int
dka_batch_checkpoint(
    struct dka_batch *b, const char *reason, int64_t us, dka_sign_fn sign, void *arg)
{
	char t[DKA_TIME_LEN + 1], head[DKA_HASH_HEX + 1], fp[2 * DKA_FP_LEN + 1];
	uint8_t sig[DKA_SIG_LEN], pub[DKA_PUB_LEN];
	struct dk_buf msg, sig64;
	struct dk_json *j;
	int r;

	dk_buf_init(&msg, 512);
	dk_buf_init(&sig64, 128);
	dka_time_format(us, t);
	dka_hex(b->head.hash, DKA_HASH_LEN, head);
	if ((r = dka_checkpoint_msg(b->head.seq + 1, t, head, &msg)) != 0 ||
	    (r = sign(arg, msg.data, msg.len, sig, pub)) != 0 ||
	    (r = dk_b64_encode(&sig64, sig, sizeof(sig))) != 0)
		goto out;
	dka_key_fp(pub, fp);
	j = dka_rec_begin(b, "checkpoint", us);
	dk_json_str(j, "reason", reason);
	dk_json_uint(j, "records", b->since_cp);
	dk_json_str(j, "key", fp);
	dk_json_str(j, "sig", dk_buf_str(&sig64));
	if ((r = dka_rec_end(b)) != 0)
		goto out;
	b->since_cp = 0;
	b->has_cp = 1;
	b->cp = b->head;
	b->cp_us = us;
out:
	dk_buf_free(&msg);
	dk_buf_free(&sig64);
	return r;
}
