/*
 * dka_read.h - reading audit files back: lines bounded by DKA_LINE_MAX, and
 * a strict parser for the JSON that dka_rec.c writes.
 *
 * The parser accepts exactly our format and nothing looser: no white space,
 * keys of [a-z0-9_], integers only (no fractions or exponents), strings of
 * printable ASCII whose escapes decode to single bytes, at most
 * DKA_JSON_DEPTH levels and DKA_JSON_NODES values.  Anything else is
 * DK_ERR_PARSE with the reason in the doc's err.
 */
#ifndef DKA_READ_H
#define DKA_READ_H

#include <stddef.h>
#include <stdint.h>

#define DKA_JSON_NODES 512
#define DKA_JSON_DEPTH 4

enum dka_jtype {
	DKA_J_NULL,
	DKA_J_BOOL,
	DKA_J_INT,
	DKA_J_STR,
	DKA_J_OBJ,
	DKA_J_ARR,
};

struct dka_jnode {
	enum dka_jtype type;
	const char *key; /* in the line; NULL inside arrays */
	size_t key_len;
	const char *str; /* decoded, NUL-terminated, in the doc's arena */
	size_t str_len;
	int64_t num; /* DKA_J_INT value, DKA_J_BOOL 0/1 */
	int first;   /* first child (objects, arrays), -1 none */
	int next;    /* next sibling, -1 none */
};

struct dka_jdoc {
	struct dka_jnode n[DKA_JSON_NODES];
	int count;   /* n[0] is the top-level object */
	char *arena; /* decoded strings */
	size_t arena_cap, arena_len;
	char err[160];
};

/* Parse one line (without its newline) as one JSON object.  Reuses d's arena. */
int dka_json_parse(const char *line, size_t len, struct dka_jdoc *d);
void dka_json_free(struct dka_jdoc *d);

/* The member key of object obj, or -1. */
int dka_json_get(const struct dka_jdoc *d, int obj, const char *key);
/* Its string value (NULL when absent or not a string); *len may be NULL. */
const char *dka_json_str(const struct dka_jdoc *d, int obj, const char *key, size_t *len);
/* Its non-negative integer value: 0, or DK_ERR_NOT_FOUND / DK_ERR_PARSE. */
int dka_json_u64(const struct dka_jdoc *d, int obj, const char *key, uint64_t *v);

/* Lines of one file, read through a bounded buffer. */
struct dka_lines {
	int fd;
	uint8_t *buf; /* 2 * DKA_LINE_MAX */
	size_t start, end;
	int eof;
	uint64_t lineno; /* of the line last returned, from 1 */
};

/* Open path for reading.  DK_ERR_IO with detail. */
int dka_lines_open(const char *path, struct dka_lines *it);
void dka_lines_close(struct dka_lines *it);
/*
 * The next line: *line (valid until the next call) and *len without the
 * newline; *complete is 0 for a last line that has none.  Returns 1 for a
 * line, 0 at the end, DK_ERR_TOO_LARGE for a line over DKA_LINE_MAX,
 * DK_ERR_IO on a read error.
 */
int dka_lines_next(struct dka_lines *it, const uint8_t **line, size_t *len, int *complete);

#endif /* DKA_READ_H */
