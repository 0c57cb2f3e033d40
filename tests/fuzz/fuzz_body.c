/*
 * fuzz_body.c - body canonicalization and hashing (RFC 6376 §3.4.3-§3.4.5)
 * in random chunkings: the hash must not depend on how the body is cut,
 * as the client hashes 64 KiB chunks and the milter whatever the MTA sends.
 *
 * Input: one byte for the canonicalization, four bytes seeding the
 * chunking, then the body.
 */
#include <stdint.h>
#include <string.h>

#include "dkim/dkim.h"
#include "tests/fuzz/fuzz_common.h"

/* xorshift32: the chunk sizes, reproducible from the input. */
static uint32_t
next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void
hash_chunked(enum dkim_canon c, const uint8_t *p, size_t n, uint32_t seed, int mode,
    uint8_t out[DKIM_DIGEST_LEN])
{
	struct dkim_body b;
	size_t off = 0, k;

	FUZZ_CHECK(dkim_body_init(&b, c) == 0);
	while (off < n) {
		if (mode == 0)
			k = n - off; /* all at once */
		else if (mode == 1)
			k = 1; /* byte by byte: every CR, LF and WSP on a chunk edge */
		else
			k = 1 + next_rand(&seed) % 9;
		if (k > n - off)
			k = n - off;
		FUZZ_CHECK(dkim_body_update(&b, p + off, k) == 0);
		if (mode == 2 && next_rand(&seed) % 4 == 0)
			FUZZ_CHECK(dkim_body_update(&b, p + off, 0) == 0); /* empty chunks too */
		off += k;
	}
	FUZZ_CHECK(dkim_body_final(&b, out) == 0);
	dkim_body_free(&b);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	uint8_t whole[DKIM_DIGEST_LEN], bytes[DKIM_DIGEST_LEN], rnd[DKIM_DIGEST_LEN];
	enum dkim_canon c;
	uint32_t seed;

	if (size < 5)
		return 0;
	c = data[0] & 1 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	seed = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
	seed |= 1; /* xorshift never leaves 0 */
	data += 5;
	size -= 5;
	hash_chunked(c, data, size, seed, 0, whole);
	hash_chunked(c, data, size, seed, 1, bytes);
	hash_chunked(c, data, size, seed, 2, rnd);
	FUZZ_CHECK(memcmp(whole, bytes, sizeof(whole)) == 0);
	FUZZ_CHECK(memcmp(whole, rnd, sizeof(whole)) == 0);
	return 0;
}
