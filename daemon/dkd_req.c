/*
 * dkd_req.c - checking a SignRequest from the wire and filling a job's
 * "in" part.  No connection, no loop state: the fuzzer calls it directly.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "daemon/dkd_req.h"

#define EXPIRE_MAX (10LL * 366 * 86400)

/* A DNS-ish name: letters, digits, '-', '.', '_'; bounded. */
static int
req_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	size_t i;

	if (n > max)
		return 0;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
			return 0;
	}
	return 1;
}

static int
req_copy_lower(char *dst, size_t dstlen, const char *src)
{
	size_t i, n = strlen(src);

	if (n >= dstlen)
		return DK_ERR_TOO_LARGE;
	for (i = 0; i < n; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[n] = '\0';
	return 0;
}

int
dkd_req_fill(const Dkimkeep__V1__SignRequest *sr, struct dkd_job *job, char *text, size_t tl)
{
	struct dk_buf hl;
	size_t i, j;
	int r;

	if (!req_name_ok(sr->domain, DKIM_DOMAIN_MAX) ||
	    req_copy_lower(job->domain, sizeof(job->domain), sr->domain) != 0) {
		snprintf(text, tl, "domain is not a valid domain name");
		return DK_ERR_INVALID;
	}
	if (!req_name_ok(sr->selector, HSM_SELECTOR_MAX) ||
	    req_copy_lower(job->selector, sizeof(job->selector), sr->selector) != 0) {
		snprintf(text, tl, "selector is not a valid selector");
		return DK_ERR_INVALID;
	}
	if (strlen(sr->identity) > DKD_IDENTITY_MAX || strpbrk(sr->identity, " \t\r\n;") != NULL) {
		snprintf(text, tl, "identity is too long or has white space or ';'");
		return DK_ERR_INVALID;
	}
	memcpy(job->identity, sr->identity, strlen(sr->identity) + 1);
	if (sr->n_algorithms > DKD_MAX_ALGS) {
		snprintf(text, tl, "at most %d algorithms per request", DKD_MAX_ALGS);
		return DK_ERR_INVALID;
	}
	for (i = 0; i < sr->n_algorithms; i++) {
		if (sr->algorithms[i] != DKIMKEEP__V1__ALGORITHM__RSA_SHA256 &&
		    sr->algorithms[i] != DKIMKEEP__V1__ALGORITHM__ED25519_SHA256) {
			snprintf(text, tl, "unknown algorithm %d", (int)sr->algorithms[i]);
			return DK_ERR_INVALID;
		}
		job->algs[i] = sr->algorithms[i] == DKIMKEEP__V1__ALGORITHM__RSA_SHA256
		                   ? DKIM_ALG_RSA_SHA256
		                   : DKIM_ALG_ED25519_SHA256;
		for (j = 0; j < i; j++) {
			if (job->algs[j] == job->algs[i]) {
				snprintf(text, tl, "algorithm listed twice");
				return DK_ERR_INVALID;
			}
		}
	}
	job->nalgs = sr->n_algorithms;
	if (sr->timestamp < 0 || sr->expire < 0 || sr->expire > EXPIRE_MAX ||
	    sr->timestamp > (int64_t)time(NULL) + 86400 * 366) {
		snprintf(text, tl, "timestamp or expire out of range");
		return DK_ERR_INVALID;
	}
	job->timestamp = sr->timestamp;
	job->expire = sr->expire;
	if (sr->n_headers > DKIM_HLIST_MAX) {
		snprintf(text, tl, "at most %d header names to sign", DKIM_HLIST_MAX);
		return DK_ERR_INVALID;
	}
	if (sr->n_headers > 0) {
		dk_buf_init(&hl, DKIM_HLIST_MAX * (DKIM_HEADER_NAME_MAX + 1));
		for (i = 0; i < sr->n_headers; i++) {
			const char *h = sr->headers[i];

			if (h[0] == '\0' || strlen(h) > DKIM_HEADER_NAME_MAX ||
			    strpbrk(h, ": \t\r\n;") != NULL) {
				dk_buf_free(&hl);
				snprintf(text, tl,
				    "header name %zu is empty, too long or has ':', "
				    "';' or white space",
				    i + 1);
				return DK_ERR_INVALID;
			}
			if ((r = dk_buf_printf(&hl, "%s%s", i ? ":" : "", h)) != 0) {
				dk_buf_free(&hl);
				return r;
			}
		}
		job->headers = dk_buf_steal(&hl, NULL);
		if (job->headers == NULL)
			return DK_ERR_NOMEM;
	}
	if (sr->header_section.len == 0 || sr->header_section.len > DKIM_HEADER_SECTION_MAX) {
		snprintf(text, tl, "header_section must hold 1 byte to 1 MiB");
		return DK_ERR_INVALID;
	}
	if ((job->header_section = malloc(sr->header_section.len)) == NULL)
		return DK_ERR_NOMEM;
	memcpy(job->header_section, sr->header_section.data, sr->header_section.len);
	job->header_len = sr->header_section.len;
	job->hcanon = sr->header_canon == DKIMKEEP__V1__CANONICALIZATION__SIMPLE
	                  ? DKIM_CANON_SIMPLE
	                  : DKIM_CANON_RELAXED;
	job->bcanon = sr->body_canon == DKIMKEEP__V1__CANONICALIZATION__SIMPLE ? DKIM_CANON_SIMPLE
	                                                                       : DKIM_CANON_RELAXED;
	job->hcanon_default = sr->header_canon == DKIMKEEP__V1__CANONICALIZATION__CANON_DEFAULT;
	/* A body hash was made with some canonicalization: default means relaxed then. */
	job->bcanon_default = sr->body_canon == DKIMKEEP__V1__CANONICALIZATION__CANON_DEFAULT &&
	                      sr->content_case != DKIMKEEP__V1__SIGN_REQUEST__CONTENT_BODY_HASH;
	if (sr->content_case == DKIMKEEP__V1__SIGN_REQUEST__CONTENT_BODY_HASH) {
		if (sr->body_hash.len != DKIM_DIGEST_LEN) {
			snprintf(text, tl, "body_hash must be the 32-byte SHA-256");
			return DK_ERR_INVALID;
		}
		memcpy(job->bh, sr->body_hash.data, DKIM_DIGEST_LEN);
		job->have_bh = 1;
	} else {
		/* No body field at all is an empty body. */
		if (sr->content_case == DKIMKEEP__V1__SIGN_REQUEST__CONTENT_BODY &&
		    sr->body.len > 0) {
			if ((job->body = malloc(sr->body.len)) == NULL)
				return DK_ERR_NOMEM;
			memcpy(job->body, sr->body.data, sr->body.len);
			job->body_len = sr->body.len;
		}
	}
	return 0;
}
