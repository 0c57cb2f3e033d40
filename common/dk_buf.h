/*
 * dk_buf.h - a growable byte buffer with a hard size limit.
 *
 * Appends fail with DK_ERR_TOO_LARGE instead of growing past max, so every
 * length that comes from outside is bounded where it is stored.  The data
 * is always followed by a NUL byte (not counted in len) so text built in a
 * buffer can be used as a C string.
 */
#ifndef DK_BUF_H
#define DK_BUF_H

#include <stddef.h>
#include <stdint.h>

struct dk_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max;
};

/* Initialize an empty buffer that never holds more than max bytes. */
void dk_buf_init(struct dk_buf *b, size_t max);
/* Free the storage (wiping it first) and reset to empty. */
void dk_buf_free(struct dk_buf *b);
/* Forget the contents, keep the storage. */
void dk_buf_reset(struct dk_buf *b);
/* Make room for n more bytes: DK_ERR_TOO_LARGE past max, DK_ERR_NOMEM. */
int dk_buf_reserve(struct dk_buf *b, size_t n);
int dk_buf_put(struct dk_buf *b, const void *p, size_t n);
int dk_buf_putc(struct dk_buf *b, uint8_t c);
int dk_buf_puts(struct dk_buf *b, const char *s);
int dk_buf_printf(struct dk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (n <= len). */
void dk_buf_consume(struct dk_buf *b, size_t n);
/* The contents as a C string (never NULL). */
const char *dk_buf_str(const struct dk_buf *b);
/* Hand the storage to the caller (NUL-terminated, caller frees); buffer becomes empty. */
char *dk_buf_steal(struct dk_buf *b, size_t *lenp);

#endif /* DK_BUF_H */
