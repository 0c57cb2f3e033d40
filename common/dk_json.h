/*
 * dk_json.h - a small streaming JSON writer for --json outputs and audit lines.
 *
 * Calls append to a dk_buf; the first error sticks and is returned by
 * dk_json_finish().  key is NULL for values inside arrays and at top level.
 */
#ifndef DK_JSON_H
#define DK_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "common/dk_buf.h"

#define DK_JSON_MAX_DEPTH 16

struct dk_json {
	struct dk_buf *out;
	int depth;
	int err;
	uint8_t first[DK_JSON_MAX_DEPTH];
};

void dk_json_init(struct dk_json *j, struct dk_buf *out);
void dk_json_obj_open(struct dk_json *j, const char *key);
void dk_json_obj_close(struct dk_json *j);
void dk_json_arr_open(struct dk_json *j, const char *key);
void dk_json_arr_close(struct dk_json *j);
/* A string value; s may hold any bytes, which are escaped (invalid UTF-8 as \u00XX). */
void dk_json_str(struct dk_json *j, const char *key, const char *s);
void dk_json_strn(struct dk_json *j, const char *key, const char *s, size_t n);
void dk_json_int(struct dk_json *j, const char *key, int64_t v);
void dk_json_uint(struct dk_json *j, const char *key, uint64_t v);
void dk_json_double(struct dk_json *j, const char *key, double v);
void dk_json_bool(struct dk_json *j, const char *key, int v);
void dk_json_null(struct dk_json *j, const char *key);
/* 0, or the first error met (DK_ERR_NOMEM, DK_ERR_TOO_LARGE, DK_ERR_INVALID). */
int dk_json_finish(struct dk_json *j);

#endif /* DK_JSON_H */
