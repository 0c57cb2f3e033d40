/*
 * fuzz_b64.c - strict base64 decoding (common/dk_b64.c), and the round
 * trips: decode(encode(x)) == x, encode(decode(s)) decodes to the same.
 */
#include <stdint.h>
#include <string.h>

#include "common/dk_b64.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "tests/fuzz/fuzz_common.h"

#define MAX (1024 * 1024)

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct dk_buf dec, enc, again;
	int r;

	dk_buf_init(&dec, MAX);
	dk_buf_init(&enc, 2 * MAX);
	dk_buf_init(&again, MAX);
	r = dk_b64_decode(&dec, (const char *)data, size);
	FUZZ_CHECK(r == 0 || r == DK_ERR_PARSE || r == DK_ERR_TOO_LARGE);
	if (r == 0) {
		FUZZ_CHECK(dec.len <= size / 4 * 3);
		FUZZ_CHECK(dk_b64_encode(&enc, dec.data, dec.len) == 0);
		FUZZ_CHECK(enc.len == dk_b64_encoded_len(dec.len));
		FUZZ_CHECK(dk_b64_decode(&again, (const char *)enc.data, enc.len) == 0);
		FUZZ_CHECK(again.len == dec.len &&
		           (dec.len == 0 || memcmp(again.data, dec.data, dec.len) == 0));
	}
	dk_buf_reset(&enc);
	dk_buf_reset(&again);
	FUZZ_CHECK(dk_b64_encode(&enc, data, size) == 0);
	FUZZ_CHECK(enc.len == dk_b64_encoded_len(size) && enc.len % 4 == 0);
	FUZZ_CHECK(dk_b64_decode(&again, (const char *)enc.data, enc.len) == 0);
	FUZZ_CHECK(again.len == size && (size == 0 || memcmp(again.data, data, size) == 0));
	dk_buf_free(&dec);
	dk_buf_free(&enc);
	dk_buf_free(&again);
	return 0;
}
