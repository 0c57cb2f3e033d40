/*
 * fuzz_meta.c - the metadata record kept in the token beside each key
 * (hsm_meta_parse, docs/architecture.md "The metadata record").  Anyone
 * holding the user PIN can write such a record; a bad one must make its
 * key invisible, never crash the lister.  A record that parses must come
 * back the same through hsm_meta_format.
 */
#include <stdint.h>
#include <string.h>

#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "hsm/hsm_int.h"
#include "tests/fuzz/fuzz_common.h"

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct hsm_key_meta m, m2;
	unsigned long rev, rev2;
	struct dk_buf text;
	int r;

	r = hsm_meta_parse(data, size, &m, &rev);
	if (r != 0) {
		FUZZ_CHECK(r == DK_ERR_PARSE);
		return 0;
	}
	FUZZ_CHECK(size <= HSM_META_MAX);
	dk_buf_init(&text, HSM_META_MAX);
	r = hsm_meta_format(&m, rev, &text);
	if (r == 0) {
		FUZZ_CHECK(hsm_meta_parse(text.data, text.len, &m2, &rev2) == 0);
		FUZZ_CHECK(rev2 == rev);
		FUZZ_CHECK(
		    strcmp(m.domain, m2.domain) == 0 && strcmp(m.selector, m2.selector) == 0);
		FUZZ_CHECK(strcmp(m.alg, m2.alg) == 0 && strcmp(m.slot, m2.slot) == 0);
		FUZZ_CHECK(strcmp(m.state, m2.state) == 0);
		FUZZ_CHECK(m.created == m2.created && m.changed == m2.changed);
	}
	dk_buf_free(&text);
	return 0;
}
