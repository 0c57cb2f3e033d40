/*
 * fuzz_milter_msg.c - dkimkeep-milter rebuilding the header section from
 * the fields the MTA hands over one by one (client/milter_msg.c), then the
 * body hash.  What it rebuilds goes to dkimkeepd, which parses it with
 * dkim_headers_parse(): fields without line breaks must come back one for
 * one.
 *
 * Input: one flags byte (bit 0: SMFIP_HDR_LEADSPC), then NUL-separated
 * name, value, name, value ...; after an empty name, the body.
 */
#include <stdint.h>
#include <string.h>

#include "client/milter_msg.h"
#include "common/dk_err.h"
#include "dkim/dkim.h"
#include "tests/fuzz/fuzz_common.h"

#define FIELDS_MAX 2000

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct milter_msg m;
	struct dkim_headers h;
	uint8_t bh[DKC_HASH_LEN];
	const char *p, *end, *name, *value;
	char *copy;
	size_t accepted = 0, calls = 0;
	int leadspc, plain = 1, r;

	if (size < 1)
		return 0;
	leadspc = data[0] & 1;
	if ((copy = malloc(size + 1)) == NULL)
		abort();
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	p = copy;
	end = copy + size - 1;
	milter_msg_init(&m);
	while (p < end && calls < FIELDS_MAX) {
		name = p;
		p += strlen(p) + 1;
		if (name[0] == '\0' || p >= end)
			break;
		value = p;
		p += strlen(p) + 1;
		calls++;
		r = milter_msg_header(&m, name, value, leadspc);
		if (r == 0) {
			accepted++;
			if (strpbrk(value, "\r\n") != NULL)
				plain = 0;
		} else {
			FUZZ_CHECK(r == DK_ERR_MSG_BAD_HEADER || r == DK_ERR_MSG_HEADER_TOO_LARGE ||
			           r == DK_ERR_NOMEM);
		}
	}
	FUZZ_CHECK(m.hdr.len <= MILTER_HEADER_MAX + 2);
	if (accepted > 0) {
		memset(&h, 0, sizeof(h));
		r = dkim_headers_parse(m.hdr.data, m.hdr.len, &h);
		/* Plain fields whose names the parser takes come back one for one. */
		if (r == 0 && plain)
			FUZZ_CHECK(h.n == accepted);
		dkim_headers_free(&h);
	}
	if (milter_msg_eoh(&m) == 0) {
		if (p < end)
			FUZZ_CHECK(milter_msg_body(&m, p, (size_t)(end - p)) == 0);
		FUZZ_CHECK(milter_msg_final(&m, bh) == 0);
	}
	milter_msg_reset(&m);
	free(copy);
	return 0;
}
