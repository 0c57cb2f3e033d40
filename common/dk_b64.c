/*
 * dk_b64.c - base64 encoding and strict decoding.
 */
#include "common/dk_b64.h"
#include "common/dk_err.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
dk_b64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

int
dk_b64_encode(struct dk_buf *out, const uint8_t *in, size_t n)
{
	size_t i;
	char q[4];
	uint32_t v;
	int r;

	if ((r = dk_buf_reserve(out, dk_b64_encoded_len(n))) != 0)
		return r;
	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		q[0] = b64_alphabet[(v >> 18) & 63];
		q[1] = b64_alphabet[(v >> 12) & 63];
		q[2] = b64_alphabet[(v >> 6) & 63];
		q[3] = b64_alphabet[v & 63];
		if ((r = dk_buf_put(out, q, 4)) != 0)
			return r;
	}
	if (i < n) {
		v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		q[0] = b64_alphabet[(v >> 18) & 63];
		q[1] = b64_alphabet[(v >> 12) & 63];
		q[2] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		q[3] = '=';
		if ((r = dk_buf_put(out, q, 4)) != 0)
			return r;
	}
	return 0;
}

static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
dk_b64_decode(struct dk_buf *out, const char *in, size_t n)
{
	uint32_t acc = 0;
	size_t i, nq = 0, pad = 0;
	int v, r;
	uint8_t c;

	for (i = 0; i < n; i++) {
		c = (uint8_t)in[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			if (pad > 2)
				return DK_ERR_PARSE;
			continue;
		}
		if (pad > 0)
			return DK_ERR_PARSE; /* data after padding */
		if ((v = b64_value((char)c)) < 0)
			return DK_ERR_PARSE;
		acc = acc << 6 | (uint32_t)v;
		if (++nq == 4) {
			uint8_t t[3] = {(uint8_t)(acc >> 16), (uint8_t)(acc >> 8), (uint8_t)acc};

			if ((r = dk_buf_put(out, t, 3)) != 0)
				return r;
			nq = 0;
			acc = 0;
		}
	}
	if (nq == 0 && pad == 0)
		return 0;
	if (nq + pad != 4 || nq < 2)
		return DK_ERR_PARSE;
	if (nq == 2) {
		uint8_t t = (uint8_t)(acc >> 4);

		return dk_buf_put(out, &t, 1);
	}
	{
		uint8_t t[2] = {(uint8_t)(acc >> 10), (uint8_t)(acc >> 2)};

		return dk_buf_put(out, t, 2);
	}
}
