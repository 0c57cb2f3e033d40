/*
 * dk_json.c - streaming JSON writer.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/dk_err.h"
#include "common/dk_json.h"

void
dk_json_init(struct dk_json *j, struct dk_buf *out)
{
	j->out = out;
	j->depth = 0;
	j->err = 0;
	j->first[0] = 1;
}

static void
json_put(struct dk_json *j, const char *s, size_t n)
{
	int r;

	if (j->err == 0 && (r = dk_buf_put(j->out, s, n)) != 0)
		j->err = r;
}

static void
json_escaped(struct dk_json *j, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = (const uint8_t *)s;
	size_t i, start = 0;
	char esc[7];

	json_put(j, "\"", 1);
	for (i = 0; i < n; i++) {
		uint8_t c = p[i];
		const char *rep = NULL;
		size_t replen = 2;

		switch (c) {
		case '"':
			rep = "\\\"";
			break;
		case '\\':
			rep = "\\\\";
			break;
		case '\n':
			rep = "\\n";
			break;
		case '\r':
			rep = "\\r";
			break;
		case '\t':
			rep = "\\t";
			break;
		default:
			/* Control bytes and non-ASCII are escaped: output stays ASCII. */
			if (c < 0x20 || c >= 0x7f) {
				esc[0] = '\\';
				esc[1] = 'u';
				esc[2] = '0';
				esc[3] = '0';
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				esc[6] = '\0';
				rep = esc;
				replen = 6;
			}
			break;
		}
		if (rep == NULL)
			continue;
		json_put(j, s + start, i - start);
		json_put(j, rep, replen);
		start = i + 1;
	}
	json_put(j, s + start, n - start);
	json_put(j, "\"", 1);
}

static void
json_key(struct dk_json *j, const char *key)
{
	if (!j->first[j->depth])
		json_put(j, ",", 1);
	j->first[j->depth] = 0;
	if (key != NULL) {
		json_escaped(j, key, strlen(key));
		json_put(j, ":", 1);
	}
}

static void
json_open(struct dk_json *j, const char *key, const char *brace)
{
	json_key(j, key);
	json_put(j, brace, 1);
	if (j->depth + 1 >= DK_JSON_MAX_DEPTH) {
		if (j->err == 0)
			j->err = DK_ERR_INVALID;
		return;
	}
	j->depth++;
	j->first[j->depth] = 1;
}

static void
json_close(struct dk_json *j, const char *brace)
{
	if (j->depth == 0) {
		if (j->err == 0)
			j->err = DK_ERR_INVALID;
		return;
	}
	j->depth--;
	json_put(j, brace, 1);
}

void
dk_json_obj_open(struct dk_json *j, const char *key)
{
	json_open(j, key, "{");
}

void
dk_json_obj_close(struct dk_json *j)
{
	json_close(j, "}");
}

void
dk_json_arr_open(struct dk_json *j, const char *key)
{
	json_open(j, key, "[");
}

void
dk_json_arr_close(struct dk_json *j)
{
	json_close(j, "]");
}

void
dk_json_strn(struct dk_json *j, const char *key, const char *s, size_t n)
{
	json_key(j, key);
	json_escaped(j, s, n);
}

void
dk_json_str(struct dk_json *j, const char *key, const char *s)
{
	if (s == NULL) {
		dk_json_null(j, key);
		return;
	}
	dk_json_strn(j, key, s, strlen(s));
}

static void
json_raw(struct dk_json *j, const char *key, const char *text)
{
	json_key(j, key);
	json_put(j, text, strlen(text));
}

void
dk_json_int(struct dk_json *j, const char *key, int64_t v)
{
	char t[32];

	snprintf(t, sizeof(t), "%" PRId64, v);
	json_raw(j, key, t);
}

void
dk_json_uint(struct dk_json *j, const char *key, uint64_t v)
{
	char t[32];

	snprintf(t, sizeof(t), "%" PRIu64, v);
	json_raw(j, key, t);
}

void
dk_json_double(struct dk_json *j, const char *key, double v)
{
	char t[64];

	if (!isfinite(v)) {
		dk_json_null(j, key);
		return;
	}
	snprintf(t, sizeof(t), "%.3f", v);
	json_raw(j, key, t);
}

void
dk_json_bool(struct dk_json *j, const char *key, int v)
{
	json_raw(j, key, v ? "true" : "false");
}

void
dk_json_null(struct dk_json *j, const char *key)
{
	json_raw(j, key, "null");
}

int
dk_json_finish(struct dk_json *j)
{
	if (j->err == 0 && j->depth != 0)
		j->err = DK_ERR_INVALID;
	return j->err;
}
