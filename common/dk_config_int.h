/*
 * dk_config_int.h - what the parts of the config loader share; private to
 * common/dk_config*.c.
 *
 *   dk_config.c         loading a file, checks after the whole file, lookups
 *   dk_config_read.c    lines and sections, as inih sees them
 *   dk_config_values.c  value helpers and the generic key parsers
 *   dk_config_keys.c    each section's key parsers and the key tables
 */
#ifndef DK_CONFIG_INT_H
#define DK_CONFIG_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/dk_config.h"

#define CONF_FILE_MAX        (64L * 1024 * 1024)
#define CONF_RAW_MAX         4096 /* bytes in one line as read */
#define CONF_LINES_MAX       2000000
#define CONF_NAME_MAX        64 /* token and client names */
#define CONF_DOMAIN_MAX      253
#define CONF_LABEL_MAX       63
#define CONF_HLIST_MAX       64 /* names in headers= or oversign= */
#define CONF_HNAME_MAX       128
#define CONF_TEMPLATE_MAX    63
#define CONF_KEYS_MAX        16
#define CONF_PWBUF_MAX       (1024 * 1024)
#define CONF_DEFAULT_SOCKET  "/run/dkimkeep/sign.sock"
#define CONF_DEFAULT_MSOCKET "unix:/run/dkimkeep-milter/milter.sock" /* its RuntimeDirectory= */
#define CONF_DEFAULT_TMPL    "s{date:%Y%m}-{alg}"

enum line_kind {
	LINE_BLANK,
	LINE_SECTION,
	LINE_KEY,
	LINE_CONT, /* indented: inih hands it over as more of the previous key's value */
};

enum sect_kind {
	SECT_NONE,
	SECT_DAEMON,
	SECT_TOKEN,
	SECT_DOMAIN,
	SECT_CLIENT,
	SECT_DNS,
	SECT_MILTER,
};

struct conf_ctx;
struct key_def;

/* Parse value v of key k into section s; cont: v is an indented continuation line. */
typedef int (*key_parse_fn)(
    struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont);

struct key_def {
	const char *name;
	key_parse_fn parse;
	size_t off; /* of the field in the section's struct */
	int64_t min, max;
	unsigned flags;
};

#define KEY_LIST     0x1 /* may go on over indented lines */
#define KEY_REQUIRED 0x2
#define KEY_REPEAT   0x4 /* may be set on many lines, each adding an entry */
#define KEY_INT64    0x8 /* key_int: the field is an int64_t */

struct sect_def {
	const char *word;
	enum sect_kind kind;
	int has_arg;
	const struct key_def *keys;
	size_t nkeys;
};

/* Lines of a domain's keys that are checked once the whole file is read. */
struct dom_lines {
	int primary;
	int backup;
	int dns_publish;
};

struct conf_ctx {
	struct dk_conf *c;
	FILE *f;
	unsigned flags; /* of dk_conf_load_flags */
	int err;
	int lineno;
	enum line_kind kind;
	int have_key; /* mirrors inih's prev_name: an indented line continues a key */
	char raw[CONF_RAW_MAX + 1];

	const struct sect_def *sect;
	char label[CONF_RAW_MAX + 1]; /* "token primary", as shown in messages */
	int sect_line;
	int key_line[CONF_KEYS_MAX]; /* where each key of the section was set */
	int cont_key;                /* index of the key an indented line continues */

	size_t tokens_cap, domains_cap, clients_cap;
	struct dom_lines *dlines; /* parallel to c->domains until they are sorted */
};
#define ENV_NAME_MAX 64

int conf_fail(struct conf_ctx *x, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int conf_line_fail(struct conf_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fail on key k of the current section at the current line. */
#define KEY_FAIL(x, k, ...) conf_fail((x), (x)->lineno, (k)->name, __VA_ARGS__)
/* The field of key k in section struct s. */
#define FIELD(s, k, type) ((type *)(void *)((char *)(s) + (k)->off))

/* dk_config.c */
int conf_nomem(struct conf_ctx *x);

/* dk_config_values.c */
int conf_set_str(struct conf_ctx *x, char **dst, const char *v);
char *conf_cat3(const char *a, const char *b, const char *c);
int conf_list_add(struct conf_ctx *x, const struct key_def *k, char ***items, size_t *n, char *s);
void conf_list_free(char **items, size_t n);
int conf_number(const char *v, int64_t min, int64_t max, int64_t *out);
char *conf_trim(char *s);
void conf_lower(char *s);
int conf_has_space(const char *s);
int conf_name_ok(const char *s);
const char *conf_domain_check(char *s);
int conf_abspath(struct conf_ctx *x, const struct key_def *k, const char *v, char **out);
int conf_split(struct conf_ctx *x, const struct key_def *k, const char *v, int sep,
    int (*item)(struct conf_ctx *, const struct key_def *, void *, char *), void *arg);
int conf_id(struct conf_ctx *x, const struct key_def *k, const char *v, int group, uint32_t *id);
void conf_store(void *s, const struct key_def *k, char **p);
int key_int(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont);
int key_duration(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont);
int key_mode(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont);
int key_path(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont);
int key_socket_path(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont);
int key_file(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont);
int key_exec(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont);
int key_secret_file(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont);

/* dk_config_read.c */
int conf_section_finish(struct conf_ctx *x);
int conf_handler(void *user, const char *section, const char *name, const char *value);
char *conf_reader(char *str, int num, void *stream);

/* dk_config_keys.c: the sections and their keys */
extern const struct sect_def conf_sections[];
extern const size_t conf_nsections;
extern const struct key_def *const conf_internal_hosts_key;

#endif /* DK_CONFIG_INT_H */
