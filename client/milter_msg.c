/*
 * milter_msg.c - dkimkeep-milter: rebuilding the header section, hashing the body.
 */
#include <string.h>
#include <strings.h>

#include "client/milter_msg.h"
#include "common/dk_err.h"

void
milter_msg_init(struct milter_msg *m)
{
	dk_buf_init(&m->hdr, MILTER_HEADER_MAX);
	m->body = NULL;
	m->nfrom = 0;
}

void
milter_msg_reset(struct milter_msg *m)
{
	dk_buf_free(&m->hdr);
	dkc_body_free(m->body);
	milter_msg_init(m);
}

/* RFC 5322 §2.2: a field name is printable US-ASCII other than ':'. */
static int
name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > MILTER_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		if (name[i] < 33 || name[i] > 126 || name[i] == ':')
			return 0;
	}
	return 1;
}

/* The value with every bare LF as CRLF: MTAs hand folds over as LF or CRLF. */
static int
put_value(struct dk_buf *b, const char *value)
{
	const char *p, *nl;
	int r;

	for (p = value; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		if (nl > p && nl[-1] == '\r')
			r = dk_buf_put(b, p, (size_t)(nl + 1 - p));
		else if ((r = dk_buf_put(b, p, (size_t)(nl - p))) == 0)
			r = dk_buf_put(b, "\r\n", 2);
		if (r != 0)
			return r;
	}
	return dk_buf_puts(b, p);
}

int
milter_msg_header(struct milter_msg *m, const char *name, const char *value, int leadspc)
{
	size_t start = m->hdr.len;
	int r;

	if (name == NULL || !name_ok(name))
		return DK_ERR_MSG_BAD_HEADER;
	if (value == NULL)
		value = "";
	if ((r = dk_buf_puts(&m->hdr, name)) != 0 ||
	    (r = dk_buf_puts(&m->hdr, leadspc ? ":" : ": ")) != 0 ||
	    (r = put_value(&m->hdr, value)) != 0 || (r = dk_buf_put(&m->hdr, "\r\n", 2)) != 0) {
		m->hdr.len = start;
		return r == DK_ERR_TOO_LARGE ? DK_ERR_MSG_HEADER_TOO_LARGE : r;
	}
	if (strcasecmp(name, "From") == 0)
		m->nfrom++;
	return 0;
}

int
milter_msg_eoh(struct milter_msg *m)
{
	/* RFC 6376 §5.4: From must be signed, so there must be exactly one. */
	if (m->nfrom == 0)
		return DK_ERR_MSG_NO_FROM;
	if (m->nfrom > 1)
		return DK_ERR_MSG_MULTI_FROM;
	dkc_body_free(m->body);
	m->body = NULL;
	return dkc_body_new(0, &m->body);
}

int
milter_msg_body(struct milter_msg *m, const void *data, size_t len)
{
	if (m->body == NULL)
		return DK_ERR_INTERNAL;
	return dkc_body_update(m->body, data, len);
}

int
milter_msg_final(struct milter_msg *m, uint8_t bh[DKC_HASH_LEN])
{
	struct dkc_body *b = m->body;

	if (b == NULL)
		return DK_ERR_INTERNAL;
	m->body = NULL; /* dkc_body_final frees it, whatever it returns */
	return dkc_body_final(b, bh);
}
