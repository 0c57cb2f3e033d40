/*
 * dka_read.c - the strict JSON reader of audit lines and the bounded line
 * iterator.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/dka_read.h"
#include "audit/dka_rec.h"
#include "common/dk_err.h"

/* ---- the parser ---- */

struct jp {
	const char *begin, *p, *end;
	struct dka_jdoc *d;
};

static int jp_fail(struct jp *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
jp_fail(struct jp *x, const char *fmt, ...)
{
	va_list ap;

	snprintf(x->d->err, sizeof(x->d->err), "at byte %zu: ", (size_t)(x->p - x->begin) + 1);
	va_start(ap, fmt);
	vsnprintf(x->d->err + strlen(x->d->err), sizeof(x->d->err) - strlen(x->d->err), fmt, ap);
	va_end(ap);
	return DK_ERR_PARSE;
}

static int
jp_node(struct jp *x, enum dka_jtype type, const char *key, size_t key_len)
{
	struct dka_jnode *n;

	if (x->d->count >= DKA_JSON_NODES)
		return -1;
	n = &x->d->n[x->d->count];
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->key = key;
	n->key_len = key_len;
	n->first = n->next = -1;
	return x->d->count++;
}

static int
jp_hex4(const char *p, unsigned *v)
{
	int i, c;

	*v = 0;
	for (i = 0; i < 4; i++) {
		c = p[i];
		if (c >= '0' && c <= '9')
			c -= '0';
		else if (c >= 'a' && c <= 'f')
			c = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			c = c - 'A' + 10;
		else
			return -1;
		*v = *v << 4 | (unsigned)c;
	}
	return 0;
}

/* A string at x->p (after its quote) decoded into the arena. */
static int
jp_string(struct jp *x, const char **out, size_t *outlen)
{
	struct dka_jdoc *d = x->d;
	char *dst = d->arena + d->arena_len, c;
	unsigned v;

	*out = dst;
	while (x->p < x->end && *x->p != '"') {
		c = *x->p++;
		if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
			return jp_fail(
			    x, "byte 0x%02x in a string (the format is ASCII)", (unsigned char)c);
		if (c != '\\') {
			*dst++ = c;
			continue;
		}
		if (x->p >= x->end)
			break;
		c = *x->p++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			*dst++ = c;
			break;
		case 'n':
			*dst++ = '\n';
			break;
		case 'r':
			*dst++ = '\r';
			break;
		case 't':
			*dst++ = '\t';
			break;
		case 'u':
			if (x->end - x->p < 4 || jp_hex4(x->p, &v) != 0 || v > 0xff)
				return jp_fail(x, "a \\u escape that is not \\u0000 to \\u00ff");
			*dst++ = (char)v;
			x->p += 4;
			break;
		default:
			return jp_fail(x, "unknown escape \\%c", c);
		}
	}
	if (x->p >= x->end)
		return jp_fail(x, "unterminated string");
	x->p++;
	*outlen = (size_t)(dst - *out);
	*dst++ = '\0';
	d->arena_len = (size_t)(dst - d->arena);
	return 0;
}

static int
jp_int(struct jp *x, int64_t *v)
{
	int neg = 0, nd = 0;
	uint64_t u = 0, lim;

	if (*x->p == '-') {
		neg = 1;
		x->p++;
	}
	if (x->p < x->end && *x->p == '0' && x->p + 1 < x->end && x->p[1] >= '0' && x->p[1] <= '9')
		return jp_fail(x, "a number with a leading zero");
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	while (x->p < x->end && *x->p >= '0' && *x->p <= '9') {
		if (u > (lim - (uint64_t)(*x->p - '0')) / 10)
			return jp_fail(x, "a number out of range");
		u = u * 10 + (uint64_t)(*x->p++ - '0');
		nd++;
	}
	if (nd == 0)
		return jp_fail(x, "a malformed number");
	if (x->p < x->end && (*x->p == '.' || *x->p == 'e' || *x->p == 'E'))
		return jp_fail(x, "a number that is not an integer");
	*v = neg ? (int64_t)(0 - u) : (int64_t)u;
	return 0;
}

static int jp_value(struct jp *x, const char *key, size_t key_len, int depth, int *idx);

static int
jp_key(struct jp *x, const char **key, size_t *len)
{
	const char *k;

	if (x->p >= x->end || *x->p != '"')
		return jp_fail(x, "a member name was expected");
	k = ++x->p;
	while (x->p < x->end &&
	       ((*x->p >= 'a' && *x->p <= 'z') || (*x->p >= '0' && *x->p <= '9') || *x->p == '_'))
		x->p++;
	if (x->p >= x->end || *x->p != '"' || x->p == k)
		return jp_fail(x, "a member name that is not [a-z0-9_]+");
	*key = k;
	*len = (size_t)(x->p - k);
	x->p++;
	if (x->p >= x->end || *x->p != ':')
		return jp_fail(x, "':' was expected");
	x->p++;
	return 0;
}

/* Members of an object or elements of an array, after the opening brace. */
static int
jp_container(struct jp *x, int idx, int depth)
{
	int is_obj = x->d->n[idx].type == DKA_J_OBJ, child, prev = -1, r, i;
	char close = is_obj ? '}' : ']';
	const char *key = NULL;
	size_t key_len = 0;

	if (depth >= DKA_JSON_DEPTH)
		return jp_fail(x, "nested deeper than %d levels", DKA_JSON_DEPTH);
	if (x->p < x->end && *x->p == close) {
		x->p++;
		return 0;
	}
	for (;;) {
		if (is_obj && (r = jp_key(x, &key, &key_len)) != 0)
			return r;
		if (is_obj) {
			for (i = x->d->n[idx].first; i >= 0; i = x->d->n[i].next) {
				if (x->d->n[i].key_len == key_len &&
				    memcmp(x->d->n[i].key, key, key_len) == 0)
					return jp_fail(
					    x, "member \"%.*s\" twice", (int)key_len, key);
			}
		}
		if ((r = jp_value(x, key, key_len, depth + 1, &child)) != 0)
			return r;
		if (prev < 0)
			x->d->n[idx].first = child;
		else
			x->d->n[prev].next = child;
		prev = child;
		if (x->p < x->end && *x->p == ',') {
			x->p++;
			continue;
		}
		if (x->p < x->end && *x->p == close) {
			x->p++;
			return 0;
		}
		return jp_fail(x, "',' or '%c' was expected", close);
	}
}

static int
jp_literal(struct jp *x, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(x->end - x->p) < n || memcmp(x->p, word, n) != 0)
		return jp_fail(x, "an unknown value");
	x->p += n;
	return 0;
}

static int
jp_value(struct jp *x, const char *key, size_t key_len, int depth, int *idx)
{
	struct dka_jnode *n;
	char c;
	int i;

	if (x->p >= x->end)
		return jp_fail(x, "a value was expected");
	c = *x->p;
	if ((i = jp_node(x, DKA_J_NULL, key, key_len)) < 0)
		return jp_fail(x, "more than %d values", DKA_JSON_NODES);
	*idx = i;
	n = &x->d->n[i];
	switch (c) {
	case '{':
	case '[':
		n->type = c == '{' ? DKA_J_OBJ : DKA_J_ARR;
		x->p++;
		return jp_container(x, i, depth);
	case '"':
		n->type = DKA_J_STR;
		x->p++;
		return jp_string(x, &n->str, &n->str_len);
	case 't':
		n->type = DKA_J_BOOL;
		n->num = 1;
		return jp_literal(x, "true");
	case 'f':
		n->type = DKA_J_BOOL;
		return jp_literal(x, "false");
	case 'n':
		return jp_literal(x, "null");
	default:
		if (c != '-' && (c < '0' || c > '9'))
			return jp_fail(
			    x, "an unexpected character '%c'", c >= 0x20 && c < 0x7f ? c : '?');
		n->type = DKA_J_INT;
		return jp_int(x, &n->num);
	}
}

int
dka_json_parse(const char *line, size_t len, struct dka_jdoc *d)
{
	struct jp x = {line, line, line + len, d};
	char *a;
	int top, r;

	d->count = 0;
	d->err[0] = '\0';
	d->arena_len = 0;
	/* Decoded strings never outgrow the line. */
	if (d->arena_cap < len + 1) {
		if ((a = realloc(d->arena, len + 1)) == NULL)
			return DK_ERR_NOMEM;
		d->arena = a;
		d->arena_cap = len + 1;
	}
	if (len == 0 || line[0] != '{') {
		snprintf(d->err, sizeof(d->err), "the line is not a JSON object");
		return DK_ERR_PARSE;
	}
	if ((r = jp_value(&x, NULL, 0, 0, &top)) != 0)
		return r;
	if (x.p != x.end) {
		snprintf(d->err, sizeof(d->err), "at byte %zu: text after the object",
		    (size_t)(x.p - line));
		return DK_ERR_PARSE;
	}
	return 0;
}

void
dka_json_free(struct dka_jdoc *d)
{
	free(d->arena);
	d->arena = NULL;
	d->arena_cap = d->arena_len = 0;
	d->count = 0;
}

int
dka_json_get(const struct dka_jdoc *d, int obj, const char *key)
{
	size_t kl = strlen(key);
	int i;

	if (obj < 0 || obj >= d->count || d->n[obj].type != DKA_J_OBJ)
		return -1;
	for (i = d->n[obj].first; i >= 0; i = d->n[i].next) {
		if (d->n[i].key_len == kl && memcmp(d->n[i].key, key, kl) == 0)
			return i;
	}
	return -1;
}

const char *
dka_json_str(const struct dka_jdoc *d, int obj, const char *key, size_t *len)
{
	int i = dka_json_get(d, obj, key);

	if (i < 0 || d->n[i].type != DKA_J_STR)
		return NULL;
	if (len != NULL)
		*len = d->n[i].str_len;
	return d->n[i].str;
}

int
dka_json_u64(const struct dka_jdoc *d, int obj, const char *key, uint64_t *v)
{
	int i = dka_json_get(d, obj, key);

	if (i < 0)
		return DK_ERR_NOT_FOUND;
	if (d->n[i].type != DKA_J_INT || d->n[i].num < 0)
		return DK_ERR_PARSE;
	*v = (uint64_t)d->n[i].num;
	return 0;
}

/* ---- lines ---- */

#define LINES_BUF (2 * DKA_LINE_MAX)

int
dka_lines_open(const char *path, struct dka_lines *it)
{
	memset(it, 0, sizeof(*it));
	it->fd = -1;
	if ((it->buf = malloc(LINES_BUF)) == NULL)
		return DK_ERR_NOMEM;
	if ((it->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		free(it->buf);
		it->buf = NULL;
		return dk_err_set(DK_ERR_IO, "cannot open %s: %s", path, strerror(errno));
	}
	return 0;
}

void
dka_lines_close(struct dka_lines *it)
{
	if (it->fd >= 0)
		close(it->fd);
	free(it->buf);
	memset(it, 0, sizeof(*it));
	it->fd = -1;
}

/* Read more into the buffer; 0 or DK_ERR_IO. */
static int
lines_fill(struct dka_lines *it)
{
	ssize_t n;

	if (it->start > 0) {
		memmove(it->buf, it->buf + it->start, it->end - it->start);
		it->end -= it->start;
		it->start = 0;
	}
	for (;;) {
		n = read(it->fd, it->buf + it->end, LINES_BUF - it->end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dk_err_set(DK_ERR_IO, "read error: %s", strerror(errno));
		if (n == 0)
			it->eof = 1;
		it->end += (size_t)n;
		return 0;
	}
}

int
dka_lines_next(struct dka_lines *it, const uint8_t **line, size_t *len, int *complete)
{
	uint8_t *nl;
	size_t have;
	int r;

	for (;;) {
		have = it->end - it->start;
		nl = have ? memchr(it->buf + it->start, '\n', have) : NULL;
		if (nl != NULL) {
			*line = it->buf + it->start;
			*len = (size_t)(nl - *line);
			*complete = 1;
			it->start += *len + 1;
			it->lineno++;
			return *len + 1 > DKA_LINE_MAX ? DK_ERR_TOO_LARGE : 1;
		}
		if (have >= DKA_LINE_MAX) {
			/* Skip the rest of the over-long line: the next call reads the line after
			 * it. */
			for (;;) {
				it->start = it->end;
				if (it->eof)
					break;
				if ((r = lines_fill(it)) != 0)
					return r;
				have = it->end - it->start;
				if (have &&
				    (nl = memchr(it->buf + it->start, '\n', have)) != NULL) {
					it->start += (size_t)(nl - (it->buf + it->start)) + 1;
					break;
				}
			}
			it->lineno++;
			return DK_ERR_TOO_LARGE;
		}
		if (it->eof) {
			if (have == 0)
				return 0;
			*line = it->buf + it->start;
			*len = have;
			*complete = 0;
			it->start = it->end;
			it->lineno++;
			return 1;
		}
		if ((r = lines_fill(it)) != 0)
			return r;
	}
}
