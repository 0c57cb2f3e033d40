/*
 * fuzz_dkim_record.c - a DKIM key record as DNS serves it (rot_rec_parse,
 * RFC 6376 §3.6.1): whatever a DNS server or an attacker on the path puts
 * in a TXT record, the parser fails cleanly or yields a bounded record that
 * compares equal to itself.
 */
#include <stdint.h>
#include <string.h>

#include "common/dk_err.h"
#include "rotate/rot_record.h"
#include "tests/fuzz/fuzz_common.h"

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct rot_rec r;
	int e;

	rot_rec_init(&r);
	e = rot_rec_parse((const char *)data, size, &r);
	if (e != 0) {
		FUZZ_CHECK(e == DK_ERR_PARSE || e == DK_ERR_TOO_LARGE);
	} else {
		FUZZ_CHECK(size <= ROT_REC_VALUE_MAX && r.p.len <= size);
		FUZZ_CHECK(strlen(r.k) < sizeof(r.k) && r.k[0] != '\0');
		FUZZ_CHECK(rot_rec_compare(&r, &r) == (r.p.len == 0 ? ROT_REVOKED : ROT_MATCH));
	}
	rot_rec_free(&r);
	return 0;
}
