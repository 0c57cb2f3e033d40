/*
 * dk_b64.h - base64 (RFC 4648 §4) encoding and strict decoding.
 */
#ifndef DK_B64_H
#define DK_B64_H

#include <stddef.h>
#include <stdint.h>

#include "common/dk_buf.h"

/* Length of the encoding of n bytes, without a NUL. */
size_t dk_b64_encoded_len(size_t n);
/* Append the base64 of in[0..n) to out. */
int dk_b64_encode(struct dk_buf *out, const uint8_t *in, size_t n);
/*
 * Decode in[0..n) into out, skipping ASCII white space (as DKIM tag values
 * allow, RFC 6376 §3.5).  DK_ERR_PARSE on any other non-alphabet byte or on
 * bad padding.
 */
int dk_b64_decode(struct dk_buf *out, const char *in, size_t n);

#endif /* DK_B64_H */
