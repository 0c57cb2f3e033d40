/*
 * dkc_util.c - libdkimkeep: body hashing, header splitting, names and codes.
 */
#include <stdlib.h>
#include <sysexits.h>

#include "client/dkimkeep_client.h"
#include "common/dk_err.h"
#include "dkim/dkim.h"

struct dkc_body {
	struct dkim_body b;
};

int
dkc_body_new(int simple, struct dkc_body **out)
{
	struct dkc_body *b;
	int r;

	*out = NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return DK_ERR_NOMEM;
	if ((r = dkim_body_init(&b->b, simple ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED)) != 0) {
		free(b);
		return r;
	}
	*out = b;
	return 0;
}

int
dkc_body_update(struct dkc_body *b, const void *data, size_t len)
{
	return dkim_body_update(&b->b, data, len);
}

int
dkc_body_final(struct dkc_body *b, uint8_t hash[DKC_HASH_LEN])
{
	int r = dkim_body_final(&b->b, hash);

	free(b);
	return r;
}

void
dkc_body_free(struct dkc_body *b)
{
	if (b == NULL)
		return;
	dkim_body_free(&b->b);
	free(b);
}

int
dkc_header_end(const uint8_t *msg, size_t len, size_t *hdr_len, size_t *body_off)
{
	int r = dkim_header_end(msg, len, hdr_len, body_off);

	if (r == 0)
		return 1;
	return r == DK_ERR_NOT_FOUND ? 0 : r;
}

const char *
dkc_strerror(int err)
{
	const char *d = dk_err_detail();

	return d[0] ? d : dk_strerror(err);
}

const char *
dkc_status_name(int status)
{
	static const char *const names[] = {"UNSPECIFIED", "OK", "BAD_REQUEST", "BAD_MESSAGE",
	    "NOT_AUTHORIZED", "UNKNOWN_DOMAIN", "NO_KEY", "BUSY", "RATE_LIMITED",
	    "TOKEN_UNAVAILABLE", "AUDIT_UNAVAILABLE", "INTERNAL"};

	if (status < 0 || (size_t)status >= sizeof(names) / sizeof(names[0]))
		return "UNKNOWN";
	return names[status];
}

int
dkc_status_exit(int status)
{
	switch (status) {
	case DKC_OK:
		return EX_OK;
	case DKC_BAD_REQUEST:
		return EX_USAGE;
	case DKC_BAD_MESSAGE:
		return EX_DATAERR;
	case DKC_NOT_AUTHORIZED:
	case DKC_UNKNOWN_DOMAIN:
		return EX_NOPERM;
	case DKC_BUSY:
	case DKC_RATE_LIMITED:
		return EX_TEMPFAIL;
	case DKC_NO_KEY:
	case DKC_TOKEN_UNAVAILABLE:
	case DKC_AUDIT_UNAVAILABLE:
		return EX_UNAVAILABLE;
	default:
		return EX_SOFTWARE;
	}
}
