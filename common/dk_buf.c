/*
 * dk_buf.c - bounded growable byte buffer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dk_buf.h"
#include "common/dk_err.h"

void
dk_buf_init(struct dk_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
dk_buf_free(struct dk_buf *b)
{
	if (b->data != NULL) {
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
dk_buf_reset(struct dk_buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

int
dk_buf_reserve(struct dk_buf *b, size_t n)
{
	size_t need, ncap;
	uint8_t *p;

	if (n > b->max || b->len > b->max - n)
		return DK_ERR_TOO_LARGE;
	need = b->len + n + 1; /* room for the trailing NUL */
	if (need <= b->cap)
		return 0;
	ncap = b->cap < 256 ? 256 : b->cap;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	/* No realloc: a buffer may hold secrets, so the old block is wiped. */
	p = malloc(ncap);
	if (p == NULL)
		return DK_ERR_NOMEM;
	if (b->data != NULL) {
		memcpy(p, b->data, b->len);
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	b->data = p;
	b->cap = ncap;
	b->data[b->len] = '\0';
	return 0;
}

int
dk_buf_put(struct dk_buf *b, const void *p, size_t n)
{
	int r;

	if ((r = dk_buf_reserve(b, n)) != 0)
		return r;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
dk_buf_putc(struct dk_buf *b, uint8_t c)
{
	return dk_buf_put(b, &c, 1);
}

int
dk_buf_puts(struct dk_buf *b, const char *s)
{
	return dk_buf_put(b, s, strlen(s));
}

int
dk_buf_printf(struct dk_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return DK_ERR_INTERNAL;
	if ((r = dk_buf_reserve(b, (size_t)n)) != 0)
		return r;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void
dk_buf_consume(struct dk_buf *b, size_t n)
{
	if (n >= b->len) {
		dk_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

const char *
dk_buf_str(const struct dk_buf *b)
{
	return b->data != NULL ? (const char *)b->data : "";
}

char *
dk_buf_steal(struct dk_buf *b, size_t *lenp)
{
	char *p;

	if (b->data == NULL && dk_buf_reserve(b, 0) != 0)
		return NULL;
	p = (char *)b->data;
	if (lenp != NULL)
		*lenp = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
