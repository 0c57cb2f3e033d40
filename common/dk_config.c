/*
 * dk_config.c - loading and checking the INI configuration file.
 *
 * inih does the INI syntax.  Our reader callback hands it one line at a
 * time, so we know the line of every key; it also keeps the section names
 * itself (inih cuts them at 49 bytes, too short for a domain) and refuses
 * lines that inih would silently split at its line limit.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/dk_config.h"
#include "common/dk_err.h"
#include "common/dk_log.h"
#include "common/dk_time.h"

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
#define CONF_DEFAULT_MSOCKET "unix:/run/dkimkeep/milter.sock"
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

static int conf_vfail(struct conf_ctx *x, int line, const char *label, const char *key,
    const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static int conf_fail(struct conf_ctx *x, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int conf_line_fail(struct conf_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Keep the first problem only: "FILE:LINE: [label] key: problem; what to do". */
static int
conf_vfail(
    struct conf_ctx *x, int line, const char *label, const char *key, const char *fmt, va_list ap)
{
	char msg[768];

	if (x->err != 0)
		return x->err;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (label[0] != '\0' && key != NULL)
		x->err = dk_err_set(
		    DK_ERR_CONFIG, "%s:%d: [%s] %s: %s", x->c->path, line, label, key, msg);
	else if (label[0] != '\0')
		x->err = dk_err_set(DK_ERR_CONFIG, "%s:%d: [%s]: %s", x->c->path, line, label, msg);
	else if (key != NULL)
		x->err = dk_err_set(DK_ERR_CONFIG, "%s:%d: %s: %s", x->c->path, line, key, msg);
	else
		x->err = dk_err_set(DK_ERR_CONFIG, "%s:%d: %s", x->c->path, line, msg);
	return x->err;
}

/* A problem with key (NULL: the section itself) of the section in x->label. */
static int
conf_fail(struct conf_ctx *x, int line, const char *key, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = conf_vfail(x, line, x->label, key, fmt, ap);
	va_end(ap);
	return r;
}

/* A problem with the current line as text, whatever section it is in. */
static int
conf_line_fail(struct conf_ctx *x, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = conf_vfail(x, x->lineno, "", NULL, fmt, ap);
	va_end(ap);
	return r;
}

static int
conf_nomem(struct conf_ctx *x)
{
	if (x->err == 0)
		x->err = dk_err_set(DK_ERR_NOMEM, "out of memory loading %s", x->c->path);
	return x->err;
}

/* Fail on key k of the current section at the current line. */
#define KEY_FAIL(x, k, ...) conf_fail((x), (x)->lineno, (k)->name, __VA_ARGS__)

/* ---- small value helpers ---- */

static int
conf_set_str(struct conf_ctx *x, char **dst, const char *v)
{
	char *s;

	if ((s = strdup(v)) == NULL)
		return conf_nomem(x);
	free(*dst);
	*dst = s;
	return 0;
}

/* a, b and c end to end in a new string; NULL when out of memory. */
static char *
conf_cat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *p;

	if ((p = malloc(la + lb + lc + 1)) == NULL)
		return NULL;
	memcpy(p, a, la);
	memcpy(p + la, b, lb);
	memcpy(p + la + lb, c, lc + 1);
	return p;
}

/* Append s (taken over) to a list that grows in powers of two. */
static int
conf_list_add(struct conf_ctx *x, const struct key_def *k, char ***items, size_t *n, char *s)
{
	char **p;
	size_t cap;

	if (*n >= DK_CONF_MAX_LIST) {
		free(s);
		return KEY_FAIL(x, k, "more than %d entries; split the section", DK_CONF_MAX_LIST);
	}
	if (*n == 0 || (*n & (*n - 1)) == 0) {
		cap = *n == 0 ? 4 : *n * 2;
		if ((p = reallocarray(*items, cap, sizeof(*p))) == NULL) {
			free(s);
			return conf_nomem(x);
		}
		*items = p;
	}
	(*items)[(*n)++] = s;
	return 0;
}

static void
conf_list_free(char **items, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

/* A whole decimal number in [min, max]; -1 otherwise. */
static int
conf_number(const char *v, int64_t min, int64_t max, int64_t *out)
{
	long long n;
	char *end;

	if (!isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static char *
conf_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static void
conf_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

static int
conf_has_space(const char *s)
{
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s))
			return 1;
	return 0;
}

/* Token and client names: letters, digits, '.', '_' and '-'. */
static int
conf_name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > CONF_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) == NULL)
			return 0;
	return 1;
}

/* A domain name in place, lower-cased: LDH labels of 1..63, at most 253 in all. */
static const char *
conf_domain_check(char *s)
{
	size_t n = strlen(s), lab = 0, i;

	if (n == 0)
		return "empty domain name";
	if (n > CONF_DOMAIN_MAX)
		return "domain name longer than 253 characters";
	if (s[n - 1] == '.')
		return "trailing dot; write the domain without it";
	conf_lower(s);
	for (i = 0; i <= n; i++) {
		if (s[i] == '.' || s[i] == '\0') {
			if (lab == 0)
				return "empty label (two dots, or a leading dot)";
			if (s[i - 1] == '-')
				return "a label ends with '-'";
			lab = 0;
			continue;
		}
		if ((unsigned char)s[i] >= 0x80)
			return "non-ASCII character; write the A-label form (xn--...)";
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return "only letters, digits, '-' and '.' are allowed";
		if (lab == 0 && s[i] == '-')
			return "a label starts with '-'";
		if (++lab > CONF_LABEL_MAX)
			return "a label is longer than 63 characters";
	}
	return NULL;
}

/* Resolve v against the config file's directory. */
static int
conf_abspath(struct conf_ctx *x, const struct key_def *k, const char *v, char **out)
{
	const char *dir = "", *sep = "";
	char *p;

	if (v[0] != '/') {
		dir = x->c->dir;
		sep = strcmp(dir, "/") == 0 ? "" : "/";
	}
	if (strlen(dir) + strlen(sep) + strlen(v) >= PATH_MAX)
		return KEY_FAIL(x, k, "path longer than %d bytes; shorten it", PATH_MAX - 1);
	if ((p = conf_cat3(dir, sep, v)) == NULL)
		return conf_nomem(x);
	*out = p;
	return 0;
}

/* Split v at sep; one trailing empty entry is allowed (the list goes on below). */
static int
conf_split(struct conf_ctx *x, const struct key_def *k, const char *v, int sep,
    int (*item)(struct conf_ctx *, const struct key_def *, void *, char *), void *arg)
{
	char *copy, *p, *next, *it;
	int r = 0, count = 0;

	if ((copy = strdup(v)) == NULL)
		return conf_nomem(x);
	for (p = copy; p != NULL; p = next) {
		if ((next = strchr(p, sep)) != NULL)
			*next++ = '\0';
		it = conf_trim(p);
		if (*it == '\0') {
			if (next == NULL && count > 0)
				break;
			r = KEY_FAIL(
			    x, k, "empty entry in the list; entries are separated by '%c'", sep);
			goto out;
		}
		if ((r = item(x, k, arg, it)) != 0)
			goto out;
		count++;
	}
out:
	free(copy);
	return r;
}

/* ---- users and groups ---- */

/* 0 found, 1 no such user/group, DK_ERR_NOMEM. */
static int
conf_getpw(const char *name, int group, uint32_t *id)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	size_t len = 4096;
	char *buf = NULL, *nb;
	int e, r;

	for (;;) {
		if ((nb = realloc(buf, len)) == NULL) {
			r = DK_ERR_NOMEM;
			goto out;
		}
		buf = nb;
		if (group)
			e = getgrnam_r(name, &gr, buf, len, &grp);
		else
			e = getpwnam_r(name, &pw, buf, len, &pwp);
		if (e != ERANGE || len >= CONF_PWBUF_MAX)
			break;
		len *= 2;
	}
	r = 1;
	if (group && grp != NULL) {
		*id = grp->gr_gid;
		r = 0;
	} else if (!group && pwp != NULL) {
		*id = pwp->pw_uid;
		r = 0;
	}
out:
	free(buf);
	return r;
}

/* A user or group given by name or number. */
static int
conf_id(struct conf_ctx *x, const struct key_def *k, const char *v, int group, uint32_t *id)
{
	const char *what = group ? "group" : "user";
	int64_t n;
	int r;

	if (isdigit((unsigned char)v[0])) {
		if (conf_number(v, 0, (int64_t)UINT32_MAX - 1, &n) != 0)
			return KEY_FAIL(
			    x, k, "\"%s\" is not a %s name or a number below 4294967295", v, what);
		*id = (uint32_t)n;
		return 0;
	}
	r = conf_getpw(v, group, id);
	if (r == DK_ERR_NOMEM)
		return conf_nomem(x);
	if (r != 0)
		return KEY_FAIL(
		    x, k, "no %s named \"%s\" on this system; create it or give a number", what, v);
	return 0;
}

/* ---- generic keys ---- */

#define FIELD(s, k, type) ((type *)(void *)((char *)(s) + (k)->off))

/* Put the string *p into key k's field of section s, freeing what was there. */
static void
conf_store(void *s, const struct key_def *k, char **p)
{
	free(*FIELD(s, k, char *));
	*FIELD(s, k, char *) = *p;
	*p = NULL;
}

static int
key_int(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	int64_t n;

	(void)cont;
	if (conf_number(v, k->min, k->max, &n) != 0)
		return KEY_FAIL(x, k, "\"%s\" is not a whole number from %lld to %lld", v,
		    (long long)k->min, (long long)k->max);
	*FIELD(s, k, int) = (int)n;
	return 0;
}

static int
key_int64(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	int64_t n;

	(void)cont;
	if (conf_number(v, k->min, k->max, &n) != 0)
		return KEY_FAIL(x, k, "\"%s\" is not a whole number from %lld to %lld", v,
		    (long long)k->min, (long long)k->max);
	*FIELD(s, k, int64_t) = n;
	return 0;
}

static int
key_duration(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	int64_t secs;

	(void)cont;
	if (dk_duration_parse(v, &secs) != 0)
		return KEY_FAIL(x, k,
		    "\"%s\" is not a duration; write a number and a unit s, m, h or d (\"90d\")",
		    v);
	if (secs < k->min || secs > k->max)
		return KEY_FAIL(x, k, "%s is out of range; give %llds to %llds", v,
		    (long long)k->min, (long long)k->max);
	*FIELD(s, k, int64_t) = secs;
	return 0;
}

static int
key_mode(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	unsigned long m;
	char *end;

	(void)cont;
	errno = 0;
	m = strtoul(v, &end, 8);
	if (v[0] != '0' || *end != '\0' || errno != 0 || m > 0777)
		return KEY_FAIL(x, k, "\"%s\" is not an octal mode; write it like 0660", v);
	*FIELD(s, k, mode_t) = (mode_t)m;
	return 0;
}

/* A path, stored absolute. */
static int
key_path(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	char *p = NULL;
	int r;

	(void)cont;
	if ((r = conf_abspath(x, k, v, &p)) == 0)
		conf_store(s, k, &p);
	return r;
}

/* A Unix socket path: must fit in sun_path. */
static int
key_socket_path(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct sockaddr_un sun;
	char *p = NULL;
	int r;

	(void)cont;
	if ((r = conf_abspath(x, k, v, &p)) != 0)
		goto out;
	if (strlen(p) >= sizeof(sun.sun_path)) {
		r = KEY_FAIL(x, k, "%s is longer than the %zu bytes a Unix socket path may have", p,
		    sizeof(sun.sun_path) - 1);
		goto out;
	}
	conf_store(s, k, &p);
out:
	free(p);
	return r;
}

/* An existing regular file (following links), e.g. a PKCS#11 module. */
static int
key_file(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct stat st;
	char *p = NULL;
	int r;

	(void)cont;
	if ((r = conf_abspath(x, k, v, &p)) != 0)
		goto out;
	if (stat(p, &st) != 0)
		r = KEY_FAIL(x, k, "%s: %s; fix the path", p, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		r = KEY_FAIL(x, k, "%s is not a regular file; fix the path", p);
	else
		conf_store(s, k, &p);
out:
	free(p);
	return r;
}

/* An executable program (no arguments: it gets them from dkimkeep). */
static int
key_exec(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	char *p;
	int r;

	if ((r = key_file(x, k, s, v, cont)) != 0)
		return r;
	p = *FIELD(s, k, char *);
	if (access(p, X_OK) != 0)
		return KEY_FAIL(x, k, "%s is not executable; run \"chmod 0755 %s\"", p, p);
	return 0;
}

/* Who, besides the owner, may use a file of mode m (m & 077 != 0). */
static const char *
conf_mode_who(mode_t m)
{
	if (m & 004)
		return "readable by others";
	if (m & 040)
		return "readable by its group";
	return "writable or executable by group or others";
}

/*
 * A secret file (PIN, TSIG key): a regular file, not a link (dk_secret opens
 * with O_NOFOLLOW), mode 0400/0600.  A relative name found in
 * $CREDENTIALS_DIRECTORY is taken from there, as dk_secret_read_pin() does.
 * The secret itself is not read here.
 */
static int
key_secret_file(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	struct stat st;
	char *p = NULL;
	int r = 0;

	(void)cont;
	if (v[0] != '/' && creds != NULL && creds[0] != '\0') {
		if ((p = conf_cat3(creds, "/", v)) == NULL) {
			r = conf_nomem(x);
			goto out;
		}
		if (lstat(p, &st) == 0)
			goto check;
		free(p);
		p = NULL;
	}
	if ((r = conf_abspath(x, k, v, &p)) != 0)
		goto out;
	if (lstat(p, &st) != 0) {
		if (errno == ENOENT)
			r = KEY_FAIL(x, k,
			    "%s does not exist; create it (mode 0400, owned by the daemon's user) "
			    "or fix the path",
			    p);
		else
			r = KEY_FAIL(x, k, "%s cannot be examined: %s", p, strerror(errno));
		goto out;
	}
check:
	if (S_ISLNK(st.st_mode))
		r = KEY_FAIL(x, k,
		    "%s is a symbolic link; secrets are opened without following links, "
		    "name the file itself",
		    p);
	else if (!S_ISREG(st.st_mode))
		r = KEY_FAIL(x, k, "%s is not a regular file; fix the path", p);
	else if ((st.st_mode & 077) != 0)
		r = KEY_FAIL(x, k, "%s is %s (mode %04o); run \"chmod 0400 %s\"", p,
		    conf_mode_who(st.st_mode), (unsigned)(st.st_mode & 07777), p);
	else
		conf_store(s, k, &p);
out:
	free(p);
	return r;
}

/* ---- [daemon] ---- */

static int
key_audit_fail(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_daemon *d = s;

	(void)cont;
	if (strcmp(v, "closed") == 0)
		d->audit_fail_closed = 1;
	else if (strcmp(v, "open") == 0)
		d->audit_fail_closed = 0;
	else
		return KEY_FAIL(x, k, "\"%s\" is neither closed nor open; write closed or open", v);
	return 0;
}

static int key_token_ref(
    struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont);

/* audit_token=: a [token] name, checked once the whole file is read. */
static int
key_audit_token(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_daemon *d = s;
	int r;

	if ((r = key_token_ref(x, k, s, v, cont)) == 0)
		d->audit_token_line = x->lineno;
	return r;
}

/* user=: checked to exist, stored as written. */
static int
key_user(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	uint32_t id;
	int r;

	(void)cont;
	if ((r = conf_id(x, k, v, 0, &id)) != 0)
		return r;
	return conf_set_str(x, FIELD(s, k, char *), v);
}

/* socket_group=: checked to exist, stored as written. */
static int
key_group(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	uint32_t id;
	int r;

	(void)cont;
	if ((r = conf_id(x, k, v, 1, &id)) != 0)
		return r;
	return conf_set_str(x, FIELD(s, k, char *), v);
}

/* ---- [token] ---- */

static int
key_uri(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	(void)cont;
	/* RFC 7512 §2.3: the scheme is "pkcs11:"; p11-kit parses the rest when the token opens. */
	if (strncasecmp(v, "pkcs11:", 7) != 0 || v[7] == '\0' || conf_has_space(v))
		return KEY_FAIL(x, k,
		    "\"%s\" is not a PKCS#11 URI; write it like pkcs11:token=dkim-primary "
		    "(see \"dkimkeep token list\")",
		    v);
	return conf_set_str(x, FIELD(s, k, char *), v);
}

/* ---- [domain] ---- */

static int
key_token_ref(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	(void)cont;
	if (!conf_name_ok(v))
		return KEY_FAIL(
		    x, k, "\"%s\" is not a token name; give the NAME of a [token NAME] section", v);
	return conf_set_str(x, FIELD(s, k, char *), v);
}

static int
alg_item(struct conf_ctx *x, const struct key_def *k, void *arg, char *it)
{
	unsigned *algs = arg, bit;

	if (strcasecmp(it, "rsa-sha256") == 0)
		bit = DK_CONF_ALG_RSA_SHA256;
	else if (strcasecmp(it, "ed25519-sha256") == 0)
		bit = DK_CONF_ALG_ED25519_SHA256;
	else if (strcasecmp(it, "rsa-sha1") == 0)
		return KEY_FAIL(
		    x, k, "rsa-sha1 must not be used for signing (RFC 8301 §3.1); use rsa-sha256");
	else
		return KEY_FAIL(
		    x, k, "unknown algorithm \"%s\"; use rsa-sha256 and/or ed25519-sha256", it);
	if (*algs & bit)
		return KEY_FAIL(x, k, "%s is listed twice; list it once", it);
	*algs |= bit;
	return 0;
}

static int
key_algs(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_domain *d = s;

	(void)cont;
	return conf_split(x, k, v, ',', alg_item, &d->algs);
}

static int
key_publish(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_domain *d = s;

	(void)cont;
	if (strcmp(v, "rfc2136") == 0)
		d->dns_publish = DK_PUBLISH_RFC2136;
	else if (strcmp(v, "command") == 0)
		d->dns_publish = DK_PUBLISH_COMMAND;
	else if (strcmp(v, "manual") == 0)
		d->dns_publish = DK_PUBLISH_MANUAL;
	else
		return KEY_FAIL(x, k, "\"%s\" is not rfc2136, command or manual", v);
	return 0;
}

struct hlist {
	char **str; /* colon list being built */
	size_t count;
};

static int
hlist_item(struct conf_ctx *x, const struct key_def *k, void *arg, char *it)
{
	struct hlist *h = arg;
	const char *old = *h->str != NULL ? *h->str : "";
	size_t i, n = strlen(it);
	char *p;

	/* RFC 5322 §3.6.8: a field name is printable US-ASCII except ':'. */
	for (i = 0; i < n; i++)
		if ((unsigned char)it[i] <= 32 || (unsigned char)it[i] >= 127)
			return KEY_FAIL(x, k, "\"%s\" is not a header field name", it);
	if (n > CONF_HNAME_MAX)
		return KEY_FAIL(x, k, "header name longer than %d characters", CONF_HNAME_MAX);
	if (++h->count > CONF_HLIST_MAX)
		return KEY_FAIL(x, k, "more than %d header names", CONF_HLIST_MAX);
	conf_lower(it);
	if ((p = conf_cat3(old, old[0] != '\0' ? ":" : "", it)) == NULL)
		return conf_nomem(x);
	free(*h->str);
	*h->str = p;
	return 0;
}

static int
key_hlist(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct hlist h;
	const char *p;

	h.str = FIELD(s, k, char *);
	h.count = 0;
	if (cont && *h.str != NULL)
		for (h.count = 1, p = *h.str; *p != '\0'; p++)
			h.count += *p == ':';
	return conf_split(x, k, v, ':', hlist_item, &h);
}

static int
conf_canon_word(const char *w, size_t n, int *out)
{
	if (n == 6 && strncmp(w, "simple", n) == 0)
		*out = 0;
	else if (n == 7 && strncmp(w, "relaxed", n) == 0)
		*out = 1;
	else
		return -1;
	return 0;
}

static int
key_canon(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_domain *d = s;
	const char *slash = strchr(v, '/');
	int h, b = 0;

	(void)cont;
	/* RFC 6376 §3.5 c=: "relaxed" alone means relaxed/simple. */
	if (conf_canon_word(v, slash != NULL ? (size_t)(slash - v) : strlen(v), &h) != 0 ||
	    (slash != NULL && conf_canon_word(slash + 1, strlen(slash + 1), &b) != 0))
		return KEY_FAIL(x, k,
		    "\"%s\" is not HEADER/BODY of simple or relaxed; write relaxed/relaxed", v);
	d->canon_header = h;
	d->canon_body = b;
	return 0;
}

static int
key_rsa_bits(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_domain *d = s;

	(void)cont;
	/* RFC 8301 §3.2: at least 1024 bits, 2048 or more recommended; we keep to the latter. */
	if (strcmp(v, "2048") == 0 || strcmp(v, "3072") == 0 || strcmp(v, "4096") == 0)
		d->rsa_bits = atoi(v);
	else
		return KEY_FAIL(x, k, "\"%s\" is not 2048, 3072 or 4096", v);
	return 0;
}

/* A strftime format inside {date:...}: only fields that give selector-safe characters. */
static int
conf_date_fmt_ok(const char *f, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (f[i] == '%') {
			if (++i == n || strchr("YmdHMSjyGVu", f[i]) == NULL)
				return 0;
		} else if (!isalnum((unsigned char)f[i]) && f[i] != '-') {
			return 0;
		}
	}
	return 1;
}

static int
key_template(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	const char *p = v, *end;

	(void)cont;
	if (strlen(v) > CONF_TEMPLATE_MAX)
		goto bad;
	while (*p != '\0') {
		if (*p == '{') {
			if ((end = strchr(p, '}')) == NULL)
				goto bad;
			if (!((end - p == 4 && strncmp(p, "{alg}", 5) == 0) ||
			        (strncmp(p, "{date:", 6) == 0 &&
			            conf_date_fmt_ok(p + 6, (size_t)(end - p - 6)))))
				goto bad;
			p = end + 1;
		} else if (isalnum((unsigned char)*p) || *p == '-' || *p == '.') {
			p++;
		} else {
			goto bad;
		}
	}
	return conf_set_str(x, FIELD(s, k, char *), v);
bad:
	return KEY_FAIL(x, k,
	    "\"%s\" is not a selector template: up to %d letters, digits, '-', '.', {alg} and "
	    "{date:FORMAT} with %%Y %%m %%d %%H %%M %%S %%j %%y %%G %%V %%u; e.g. "
	    "s{date:%%Y%%m}-{alg}",
	    v, CONF_TEMPLATE_MAX);
}

/* ---- [client] ---- */

static int
key_uid(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_client *cl = s;
	uint32_t id;
	int r;

	(void)cont;
	if ((r = conf_id(x, k, v, 0, &id)) != 0)
		return r;
	cl->uid = (uid_t)id;
	cl->has_uid = 1;
	return 0;
}

static int
key_gid(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_client *cl = s;
	uint32_t id;
	int r;

	(void)cont;
	if ((r = conf_id(x, k, v, 1, &id)) != 0)
		return r;
	cl->gid = (gid_t)id;
	cl->has_gid = 1;
	return 0;
}

static int
pattern_item(struct conf_ctx *x, const struct key_def *k, void *arg, char *it)
{
	struct dk_conf_client *cl = arg;
	const char *why;
	char *p;

	if (strcmp(it, "*") != 0) {
		why = conf_domain_check(strncmp(it, "*.", 2) == 0 ? it + 2 : it);
		if (why != NULL)
			return KEY_FAIL(x, k,
			    "\"%s\": %s; write example.com, *.example.com (its subdomains) or *",
			    it, why);
	}
	if ((p = strdup(it)) == NULL)
		return conf_nomem(x);
	return conf_list_add(x, k, &cl->domains, &cl->ndomains, p);
}

static int
key_patterns(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	(void)cont;
	return conf_split(x, k, v, ',', pattern_item, s);
}

static int
key_rate(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_client *cl = s;
	const char *slash = strchr(v, '/');
	char num[16];
	int64_t n;
	double per;

	(void)cont;
	if (slash == NULL || (size_t)(slash - v) >= sizeof(num))
		goto bad;
	memcpy(num, v, (size_t)(slash - v));
	num[slash - v] = '\0';
	if (conf_number(num, 1, 1000000, &n) != 0)
		goto bad;
	if (strcmp(slash + 1, "s") == 0)
		per = 1;
	else if (strcmp(slash + 1, "m") == 0)
		per = 60;
	else if (strcmp(slash + 1, "h") == 0)
		per = 3600;
	else
		goto bad;
	cl->rate = (double)n / per;
	return 0;
bad:
	return KEY_FAIL(x, k,
	    "\"%s\" is not a rate; write COUNT/s, COUNT/m or COUNT/h with COUNT 1 to 1000000 "
	    "(\"500/s\")",
	    v);
}

/* ---- [dns] ---- */

/* A host name or address literal. */
static int
conf_host_ok(char *h)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1)
		return 1;
	return conf_domain_check(h) == NULL;
}

/* HOST[:PORT], [V6]:PORT or a bare IPv6 address; stored as host:port or [v6]:port. */
static int
key_hostport(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	unsigned char a[16];
	char host[CONF_DOMAIN_MAX + 1], *out;
	const char *h = v, *hend, *port = "53", *colon = strchr(v, ':');
	int64_t n;
	size_t hl, need;
	int v6 = 0;

	(void)cont;
	if (v[0] == '[') {
		h = v + 1;
		if ((hend = strchr(h, ']')) == NULL || (hend[1] != '\0' && hend[1] != ':'))
			goto bad;
		if (hend[1] == ':')
			port = hend + 2;
		v6 = 1;
	} else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
		hend = colon;
		port = colon + 1;
	} else {
		hend = v + strlen(v);
		v6 = colon != NULL;
	}
	hl = (size_t)(hend - h);
	if (hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (v6 ? inet_pton(AF_INET6, host, a) != 1 : !conf_host_ok(host))
		goto bad;
	if (conf_number(port, 1, 65535, &n) != 0)
		goto bad;
	need = hl + sizeof("[]:65535");
	if ((out = malloc(need)) == NULL)
		return conf_nomem(x);
	snprintf(out, need, v6 ? "[%s]:%lld" : "%s:%lld", host, (long long)n);
	conf_store(s, k, &out);
	return 0;
bad:
	return KEY_FAIL(x, k,
	    "\"%s\" is not HOST:PORT; write it like 127.0.0.1:53, [::1]:53 or ns1.example.com", v);
}

/* ---- [milter] ---- */

/* libmilter's forms: unix:PATH (local:PATH, or a bare path), inet:PORT@HOST, inet6:PORT@HOST. */
static int
key_milter_socket(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	const char *rest = v, *at;
	char *p = NULL, *u = NULL;
	char port[8];
	int64_t n;
	size_t pl;
	int r;

	(void)cont;
	if (strncmp(v, "inet:", 5) == 0 || strncmp(v, "inet6:", 6) == 0) {
		rest = strchr(v, ':') + 1;
		at = strchr(rest, '@');
		pl = at != NULL ? (size_t)(at - rest) : strlen(rest);
		if (pl == 0 || pl >= sizeof(port) || (at != NULL && at[1] == '\0'))
			goto bad;
		memcpy(port, rest, pl);
		port[pl] = '\0';
		if (conf_number(port, 1, 65535, &n) != 0)
			goto bad;
		return conf_set_str(x, FIELD(s, k, char *), v);
	}
	if (strncmp(v, "unix:", 5) == 0 || strncmp(v, "local:", 6) == 0)
		rest = strchr(v, ':') + 1;
	else if (strchr(v, ':') != NULL)
		goto bad;
	if (*rest == '\0')
		goto bad;
	if ((r = conf_abspath(x, k, rest, &p)) != 0)
		goto out;
	if ((u = conf_cat3("unix:", p, "")) == NULL) {
		r = conf_nomem(x);
		goto out;
	}
	conf_store(s, k, &u);
	goto out;
bad:
	r = KEY_FAIL(x, k,
	    "\"%s\" is not a milter socket; write unix:/path, inet:PORT@HOST or inet6:PORT@HOST",
	    v);
out:
	free(p);
	free(u);
	return r;
}

static int
key_milter_sign(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_milter *m = s;

	(void)cont;
	if (strcmp(v, "local") == 0)
		m->sign = DK_MILTER_SIGN_LOCAL;
	else if (strcmp(v, "authenticated") == 0)
		m->sign = DK_MILTER_SIGN_AUTHENTICATED;
	else if (strcmp(v, "all") == 0)
		m->sign = DK_MILTER_SIGN_ALL;
	else
		return KEY_FAIL(x, k, "\"%s\" is not local, authenticated or all", v);
	return 0;
}

static int
key_on_error(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_milter *m = s;

	(void)cont;
	if (strcmp(v, "tempfail") == 0)
		m->on_error_accept = 0;
	else if (strcmp(v, "accept") == 0)
		m->on_error_accept = 1;
	else
		return KEY_FAIL(x, k, "\"%s\" is neither tempfail nor accept", v);
	return 0;
}

/* ADDR[/LEN]; the address must have no bits set past LEN. */
static int
cidr_item(struct conf_ctx *x, const struct key_def *k, void *arg, char *it)
{
	struct dk_conf_milter *m = arg;
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN], *slash, *p;
	int af, bits, i, set = 0;
	int64_t len;
	size_t need;

	if ((slash = strchr(it, '/')) != NULL)
		*slash = '\0';
	af = strchr(it, ':') != NULL ? AF_INET6 : AF_INET;
	bits = af == AF_INET6 ? 128 : 32;
	len = bits;
	if (inet_pton(af, it, a) != 1 ||
	    (slash != NULL && conf_number(slash + 1, 0, bits, &len) != 0)) {
		if (slash != NULL)
			*slash = '/';
		return KEY_FAIL(x, k, "\"%s\" is not an address or CIDR block like 10.0.0.0/8", it);
	}
	for (i = (int)len; i < bits; i++)
		if (a[i / 8] & (0x80 >> (i % 8))) {
			a[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
			set = 1;
		}
	inet_ntop(af, a, text, sizeof(text));
	if (set)
		return KEY_FAIL(x, k, "%s/%lld has bits set past the prefix; write %s/%lld", it,
		    (long long)len, text, (long long)len);
	need = strlen(text) + 5;
	if ((p = malloc(need)) == NULL)
		return conf_nomem(x);
	snprintf(p, need, "%s/%lld", text, (long long)len);
	return conf_list_add(x, k, &m->internal_hosts, &m->ninternal_hosts, p);
}

static int
key_cidrs(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	(void)cont;
	return conf_split(x, k, v, ',', cidr_item, s);
}

/*
 * env=: one VAR=value for the token's module, e.g. P11_KIT_SERVER_ADDRESS of
 * p11-kit-client.so.  Only the module's own variables are taken, never a
 * PIN (PINs live in pin_file only), never the loader's (LD_*).
 */
#define ENV_NAME_MAX  64
#define ENV_VALUE_MAX 1024

static const char *const env_allowed[] = {
    "P11_KIT_",                   /* p11-kit-client.so: P11_KIT_SERVER_ADDRESS, ... */
    "SOFTHSM2_CONF",              /* SoftHSM */
    "ChrystokiConfigurationPath", /* Thales Luna client */
    "CLOUDHSM_",                  /* AWS CloudHSM client */
    "PKCS11SPY",                  /* OpenSC pkcs11-spy.so: PKCS11SPY, PKCS11SPY_OUTPUT */
};

static int
env_name_allowed(const char *name, size_t len)
{
	static const char *const secret[] = {"PIN", "PASS", "SECRET", "CRED"};
	char up[ENV_NAME_MAX + 1];
	size_t i;

	for (i = 0; i < len; i++)
		up[i] = (char)toupper((unsigned char)name[i]);
	up[len] = '\0';
	for (i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
		if (strstr(up, secret[i]) != NULL)
			return 0;
	for (i = 0; i < sizeof(env_allowed) / sizeof(env_allowed[0]); i++) {
		size_t n = strlen(env_allowed[i]);

		if (env_allowed[i][n - 1] == '_'
		        ? (len > n && strncmp(name, env_allowed[i], n) == 0)
		        : (len == n && strncmp(name, env_allowed[i], n) == 0))
			return 1;
	}
	return 0;
}

static int
key_env(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	struct dk_conf_token *t = s;
	const char *eq = strchr(v, '=');
	size_t nlen, i;
	char *copy;

	(void)cont;
	nlen = eq != NULL ? (size_t)(eq - v) : 0;
	if (eq == NULL || nlen == 0 || nlen > ENV_NAME_MAX || eq[1] == '\0')
		return KEY_FAIL(x, k,
		    "\"%s\" is not VAR=value; write it like "
		    "env = P11_KIT_SERVER_ADDRESS=unix:path=/run/p11-kit/dkim.sock",
		    v);
	for (i = 0; i < nlen; i++)
		if (!(isalnum((unsigned char)v[i]) || v[i] == '_') || isdigit((unsigned char)v[0]))
			return KEY_FAIL(
			    x, k, "\"%.*s\" is not an environment variable name", (int)nlen, v);
	if (!env_name_allowed(v, nlen))
		return KEY_FAIL(x, k,
		    "%.*s is not a module variable dkimkeep passes on; env takes P11_KIT_*, "
		    "SOFTHSM2_CONF, ChrystokiConfigurationPath, CLOUDHSM_* and PKCS11SPY*, and "
		    "never a PIN: put the PIN in pin_file",
		    (int)nlen, v);
	if (strlen(eq + 1) > ENV_VALUE_MAX || conf_has_space(eq + 1))
		return KEY_FAIL(x, k, "the value of %.*s is longer than %d bytes or has spaces",
		    (int)nlen, v, ENV_VALUE_MAX);
	for (i = 0; i < t->nenv; i++)
		if (strncmp(t->env[i], v, nlen + 1) == 0)
			return KEY_FAIL(
			    x, k, "%.*s is set twice in this section; keep one", (int)nlen, v);
	if ((copy = strdup(v)) == NULL)
		return conf_nomem(x);
	return conf_list_add(x, k, &t->env, &t->nenv, copy);
}

/* ---- the key tables ---- */

#define DMN(f)    offsetof(struct dk_conf_daemon, f)
#define TOK(f)    offsetof(struct dk_conf_token, f)
#define DOM(f)    offsetof(struct dk_conf_domain, f)
#define DNS(f)    offsetof(struct dk_conf_dns, f)
#define MLT(f)    offsetof(struct dk_conf_milter, f)
#define TEN_YEARS (3650LL * 86400)

static const struct key_def daemon_keys[] = {
    {"socket", key_socket_path, DMN(socket), 0, 0, 0},
    {"socket_mode", key_mode, DMN(socket_mode), 0, 0, 0},
    {"socket_group", key_group, DMN(socket_group), 0, 0, 0},
    {"workers", key_int, DMN(workers), 1, 64, 0},
    {"queue", key_int, DMN(queue), 1, 65536, 0},
    {"max_connections", key_int, DMN(max_connections), 1, 100000, 0},
    {"audit_log", key_path, DMN(audit_log), 0, 0, 0},
    {"audit_fail", key_audit_fail, 0, 0, 0, 0},
    {"audit_checkpoint", key_int, DMN(audit_checkpoint), 1, 1000000, 0},
    {"audit_token", key_audit_token, DMN(audit_token), 0, 0, 0},
    {"sign_timeout_ms", key_int64, DMN(sign_timeout_ms), 10, 600000, 0},
    {"health_interval", key_duration, DMN(health_interval), 1, 86400, 0},
    {"step_interval", key_duration, DMN(step_interval), 1, 86400, 0},
    {"user", key_user, DMN(user), 0, 0, 0},
};

static const struct key_def token_keys[] = {
    {"module", key_file, TOK(module), 0, 0, KEY_REQUIRED},
    {"uri", key_uri, TOK(uri), 0, 0, KEY_REQUIRED},
    {"pin_file", key_secret_file, TOK(pin_file), 0, 0, KEY_REQUIRED},
    {"env", key_env, 0, 0, 0, KEY_REPEAT},
};

static const struct key_def domain_keys[] = {
    {"algorithms", key_algs, 0, 0, 0, KEY_LIST | KEY_REQUIRED},
    {"primary", key_token_ref, DOM(primary), 0, 0, KEY_REQUIRED},
    {"backup", key_token_ref, DOM(backup), 0, 0, 0},
    {"selector_template", key_template, DOM(selector_template), 0, 0, 0},
    {"rotate_every", key_duration, DOM(rotate_every), 1, TEN_YEARS, 0},
    {"publish_wait", key_duration, DOM(publish_wait), 0, TEN_YEARS, 0},
    {"retire_after", key_duration, DOM(retire_after), 0, TEN_YEARS, 0},
    {"destroy_after", key_duration, DOM(destroy_after), 0, TEN_YEARS, 0},
    {"dns_publish", key_publish, 0, 0, 0, 0},
    {"headers", key_hlist, DOM(headers), 0, 0, KEY_LIST},
    {"oversign", key_hlist, DOM(oversign), 0, 0, KEY_LIST},
    {"canonicalization", key_canon, 0, 0, 0, 0},
    {"rsa_bits", key_rsa_bits, 0, 0, 0, 0},
};

static const struct key_def client_keys[] = {
    {"uid", key_uid, 0, 0, 0, 0},
    {"gid", key_gid, 0, 0, 0, 0},
    {"domains", key_patterns, 0, 0, 0, KEY_LIST | KEY_REQUIRED},
    {"rate", key_rate, 0, 0, 0, 0},
};

static const struct key_def dns_keys[] = {
    {"server", key_hostport, DNS(server), 0, 0, 0},
    {"tsig_key_file", key_secret_file, DNS(tsig_key_file), 0, 0, 0},
    {"resolver", key_hostport, DNS(resolver), 0, 0, 0},
    {"publish_command", key_exec, DNS(publish_command), 0, 0, 0},
    {"notify_command", key_exec, DNS(notify_command), 0, 0, 0},
};

static const struct key_def milter_keys[] = {
    {"socket", key_milter_socket, MLT(socket), 0, 0, 0},
    {"sign", key_milter_sign, 0, 0, 0, 0},
    {"internal_hosts", key_cidrs, 0, 0, 0, KEY_LIST},
    {"on_error", key_on_error, 0, 0, 0, 0},
    {"client_socket", key_socket_path, MLT(client_socket), 0, 0, 0},
};

#define KEYS(t)     t, sizeof(t) / sizeof(t[0])
#define NKEYS_OK(t) _Static_assert(sizeof(t) / sizeof(t[0]) <= CONF_KEYS_MAX, #t " too long")

NKEYS_OK(daemon_keys);
NKEYS_OK(token_keys);
NKEYS_OK(domain_keys);
NKEYS_OK(client_keys);
NKEYS_OK(dns_keys);
NKEYS_OK(milter_keys);

static const struct sect_def sections[] = {
    {"daemon", SECT_DAEMON, 0, KEYS(daemon_keys)},
    {"token", SECT_TOKEN, 1, KEYS(token_keys)},
    {"domain", SECT_DOMAIN, 1, KEYS(domain_keys)},
    {"client", SECT_CLIENT, 1, KEYS(client_keys)},
    {"dns", SECT_DNS, 0, KEYS(dns_keys)},
    {"milter", SECT_MILTER, 0, KEYS(milter_keys)},
};

/* ---- sections ---- */

static void *
conf_sect_ptr(struct conf_ctx *x)
{
	struct dk_conf *c = x->c;

	switch (x->sect->kind) {
	case SECT_DAEMON:
		return &c->daemon;
	case SECT_TOKEN:
		return &c->tokens[c->ntokens - 1];
	case SECT_DOMAIN:
		return &c->domains[c->ndomains - 1];
	case SECT_CLIENT:
		return &c->clients[c->nclients - 1];
	case SECT_DNS:
		return &c->dns;
	case SECT_MILTER:
		return &c->milter;
	case SECT_NONE:
		break;
	}
	return NULL;
}

/* Make room for one more element of size sz in *arr of *n, growing *cap. */
static int
conf_grow(
    struct conf_ctx *x, void **arr, size_t n, size_t *cap, size_t sz, size_t max, const char *what)
{
	size_t ncap;
	void *p;

	if (n >= max)
		return conf_fail(x, x->lineno, NULL, "more than %zu %s sections; the most is %zu",
		    max, what, max);
	if (n < *cap)
		return 0;
	ncap = *cap == 0 ? 8 : *cap * 2;
	if ((p = reallocarray(*arr, ncap, sz)) == NULL)
		return conf_nomem(x);
	*arr = p;
	*cap = ncap;
	return 0;
}

static int
conf_new_token(struct conf_ctx *x, const char *name)
{
	struct dk_conf *c = x->c;
	struct dk_conf_token *t;
	void *arr = c->tokens;
	size_t i;
	int r;

	if (!conf_name_ok(name))
		return conf_fail(x, x->lineno, NULL,
		    "\"%s\" is not a token name; use 1 to %d letters, digits, '.', '_' or '-'",
		    name, CONF_NAME_MAX);
	for (i = 0; i < c->ntokens; i++)
		if (strcmp(c->tokens[i].name, name) == 0)
			return conf_fail(x, x->lineno, NULL,
			    "section appears twice (first on line %d); merge them",
			    c->tokens[i].line);
	r = conf_grow(
	    x, &arr, c->ntokens, &x->tokens_cap, sizeof(*t), DK_CONF_MAX_TOKENS, "[token]");
	c->tokens = arr;
	if (r != 0)
		return r;
	t = &c->tokens[c->ntokens];
	memset(t, 0, sizeof(*t));
	if ((t->name = strdup(name)) == NULL)
		return conf_nomem(x);
	t->line = x->lineno;
	c->ntokens++;
	return 0;
}

static int
conf_new_domain(struct conf_ctx *x, char *name)
{
	struct dk_conf *c = x->c;
	struct dk_conf_domain *d;
	struct dom_lines *dl;
	void *arr = c->domains;
	size_t cap;
	const char *why;
	int r;

	if ((why = conf_domain_check(name)) != NULL)
		return conf_fail(x, x->lineno, NULL, "not a domain name: %s", why);
	/* The section is shown in later messages as written here, lower-cased. */
	snprintf(x->label, sizeof(x->label), "domain %s", name);
	cap = x->domains_cap;
	r = conf_grow(
	    x, &arr, c->ndomains, &x->domains_cap, sizeof(*d), DK_CONF_MAX_DOMAINS, "[domain]");
	c->domains = arr;
	if (r != 0)
		return r;
	if (cap != x->domains_cap) {
		if ((dl = reallocarray(x->dlines, x->domains_cap, sizeof(*dl))) == NULL)
			return conf_nomem(x);
		x->dlines = dl;
	}
	d = &c->domains[c->ndomains];
	memset(d, 0, sizeof(*d));
	memset(&x->dlines[c->ndomains], 0, sizeof(x->dlines[0]));
	if ((d->name = strdup(name)) == NULL)
		return conf_nomem(x);
	d->line = x->lineno;
	d->rotate_every = 90 * 86400;
	d->publish_wait = 3600;
	d->retire_after = 7 * 86400;
	d->destroy_after = 30 * 86400;
	d->dns_publish = DK_PUBLISH_MANUAL;
	d->rsa_bits = 2048;
	d->canon_header = 1;
	d->canon_body = 1;
	c->ndomains++;
	return 0;
}

static int
conf_new_client(struct conf_ctx *x, const char *name)
{
	struct dk_conf *c = x->c;
	struct dk_conf_client *cl;
	void *arr = c->clients;
	size_t i;
	int r;

	if (!conf_name_ok(name))
		return conf_fail(x, x->lineno, NULL,
		    "\"%s\" is not a client name; use 1 to %d letters, digits, '.', '_' or '-'",
		    name, CONF_NAME_MAX);
	for (i = 0; i < c->nclients; i++)
		if (strcmp(c->clients[i].name, name) == 0)
			return conf_fail(x, x->lineno, NULL,
			    "section appears twice (first on line %d); merge them",
			    c->clients[i].line);
	r = conf_grow(
	    x, &arr, c->nclients, &x->clients_cap, sizeof(*cl), DK_CONF_MAX_CLIENTS, "[client]");
	c->clients = arr;
	if (r != 0)
		return r;
	cl = &c->clients[c->nclients];
	memset(cl, 0, sizeof(*cl));
	if ((cl->name = strdup(name)) == NULL)
		return conf_nomem(x);
	cl->line = x->lineno;
	c->nclients++;
	return 0;
}

/* [daemon], [dns], [milter]: once each. */
static int
conf_new_single(struct conf_ctx *x, int *line)
{
	if (*line != 0)
		return conf_fail(x, x->lineno, NULL,
		    "section appears twice (first on line %d); merge them", *line);
	*line = x->lineno;
	return 0;
}

/* The line key was set on in the current section, 0 when it was not. */
static int
conf_key_line(const struct conf_ctx *x, const char *key)
{
	size_t i;

	for (i = 0; i < x->sect->nkeys; i++)
		if (strcmp(x->sect->keys[i].name, key) == 0)
			return x->key_line[i];
	return 0;
}

/* A list key given with no entries at all ("domains =" and nothing below). */
static int
conf_empty_list(struct conf_ctx *x, const char *key, int empty)
{
	int line = conf_key_line(x, key);

	if (line == 0 || !empty)
		return 0;
	return conf_fail(x, line, key,
	    "empty list; give at least one entry, or remove the line to get the default");
}

/* 1 when the colon list has name in it. */
static int
conf_hlist_has(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	for (;;) {
		if (strncmp(p, name, n) == 0 && (p[n] == ':' || p[n] == '\0'))
			return 1;
		if ((p = strchr(p, ':')) == NULL)
			return 0;
		p++;
	}
}

static int
conf_domain_finish(struct conf_ctx *x)
{
	struct dk_conf_domain *d = conf_sect_ptr(x);
	struct dom_lines *dl = &x->dlines[x->c->ndomains - 1];
	int r;

	if ((r = conf_empty_list(x, "algorithms", d->algs == 0)) != 0 ||
	    (r = conf_empty_list(x, "headers", d->headers == NULL)) != 0)
		return r;
	/* "oversign =" with nothing: oversign no header field. */
	if (d->oversign == NULL)
		r = conf_set_str(x, &d->oversign,
		    conf_key_line(x, "oversign") != 0 ? "" : DK_CONF_DEFAULT_OVERSIGN);
	if (r == 0 && d->selector_template == NULL)
		r = conf_set_str(x, &d->selector_template, CONF_DEFAULT_TMPL);
	if (r == 0 && d->headers == NULL)
		r = conf_set_str(x, &d->headers, DK_CONF_DEFAULT_HEADERS);
	if (r != 0)
		return r;
	/* RFC 6376 §5.4: the From header field MUST be signed. */
	if (!conf_hlist_has(d->headers, "from"))
		return conf_fail(x, conf_key_line(x, "headers"), "headers",
		    "From must be signed (RFC 6376 §5.4); add from to the list");
	dl->primary = conf_key_line(x, "primary");
	dl->backup = conf_key_line(x, "backup");
	dl->dns_publish = conf_key_line(x, "dns_publish");
	return 0;
}

static int
conf_client_finish(struct conf_ctx *x)
{
	struct dk_conf_client *cl = conf_sect_ptr(x);

	if (!cl->has_uid && !cl->has_gid)
		return conf_fail(x, x->sect_line, "uid",
		    "a client needs uid, gid or both (the peer credentials it is known by); "
		    "add \"uid = USER\"");
	return conf_empty_list(x, "domains", cl->ndomains == 0);
}

/* Checks of a section once all its keys are read. */
static int
conf_section_finish(struct conf_ctx *x)
{
	const struct sect_def *sd = x->sect;
	size_t i;

	for (i = 0; i < sd->nkeys; i++)
		if ((sd->keys[i].flags & KEY_REQUIRED) && x->key_line[i] == 0)
			return conf_fail(x, x->sect_line, sd->keys[i].name,
			    "required key is missing; add a \"%s = ...\" line to this section",
			    sd->keys[i].name);
	switch (sd->kind) {
	case SECT_DOMAIN:
		return conf_domain_finish(x);
	case SECT_CLIENT:
		return conf_client_finish(x);
	case SECT_MILTER:
		return conf_empty_list(x, "internal_hosts", x->c->milter.ninternal_hosts == 0);
	default:
		return 0;
	}
}

/* "[word arg]" seen at the current line: close the previous section, open this one. */
static int
conf_section_start(struct conf_ctx *x, char *inner)
{
	char *word = conf_trim(inner), *arg;
	const struct sect_def *sd = NULL;
	struct dk_conf *c = x->c;
	size_t i;
	int r;

	if (x->sect != NULL && (r = conf_section_finish(x)) != 0)
		return r;
	x->sect = NULL;
	snprintf(x->label, sizeof(x->label), "%s", word);
	for (arg = word; *arg != '\0' && !isspace((unsigned char)*arg); arg++)
		;
	if (*arg != '\0') {
		*arg++ = '\0';
		arg = conf_trim(arg);
	}
	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (strcmp(word, sections[i].word) == 0)
			sd = &sections[i];
	if (sd == NULL)
		return conf_fail(x, x->lineno, NULL,
		    "unknown section; the sections are [daemon], [token NAME], [domain NAME], "
		    "[client NAME], [dns] and [milter]");
	if (sd->has_arg && *arg == '\0')
		return conf_fail(x, x->lineno, NULL, "a name is missing; write [%s NAME]", word);
	if (!sd->has_arg && *arg != '\0')
		return conf_fail(x, x->lineno, NULL, "takes no name; write [%s]", word);
	if (sd->has_arg && conf_has_space(arg))
		return conf_fail(
		    x, x->lineno, NULL, "the name must be one word; write [%s NAME]", word);
	memset(x->key_line, 0, sizeof(x->key_line));
	x->sect_line = x->lineno;
	switch (sd->kind) {
	case SECT_DAEMON:
		r = conf_new_single(x, &c->daemon.line);
		break;
	case SECT_DNS:
		r = conf_new_single(x, &c->dns.line);
		break;
	case SECT_MILTER:
		r = conf_new_single(x, &c->milter.line);
		break;
	case SECT_TOKEN:
		r = conf_new_token(x, arg);
		break;
	case SECT_DOMAIN:
		r = conf_new_domain(x, arg);
		break;
	case SECT_CLIENT:
		r = conf_new_client(x, arg);
		break;
	default:
		r = DK_ERR_INTERNAL;
		break;
	}
	if (r == 0)
		x->sect = sd;
	return r;
}

/* ---- inih callbacks ---- */

/* A " #" in a value: someone meant a comment, but inih only knows ';' inline. */
static int
conf_hash_comment(const char *v)
{
	const char *h = strchr(v, '#');

	return h != NULL && h > v && isspace((unsigned char)h[-1]);
}

static int
conf_key(struct conf_ctx *x, const char *name, const char *value)
{
	const struct sect_def *sd = x->sect;
	char known[512];
	size_t i, len = 0;
	int idx = -1;

	if (*name == '\0')
		return conf_line_fail(x, "a value without a key name; write \"key = value\"");
	if (sd == NULL)
		return conf_fail(x, x->lineno, name,
		    "key outside of any section; put it under the [section] it belongs to");
	for (i = 0; i < sd->nkeys; i++)
		if (strcmp(name, sd->keys[i].name) == 0)
			idx = (int)i;
	if (idx < 0) {
		known[0] = '\0';
		for (i = 0; i < sd->nkeys && len < sizeof(known); i++)
			len += (size_t)snprintf(known + len, sizeof(known) - len, "%s%s",
			    i > 0 ? ", " : "", sd->keys[i].name);
		return conf_fail(
		    x, x->lineno, name, "unknown key; the keys of [%s] are %s", sd->word, known);
	}
	if (x->key_line[idx] != 0 && !(sd->keys[idx].flags & KEY_REPEAT))
		return conf_fail(
		    x, x->lineno, name, "set twice (first on line %d); keep one", x->key_line[idx]);
	x->key_line[idx] = x->lineno;
	x->cont_key = idx;
	if (conf_hash_comment(value))
		return conf_fail(x, x->lineno, name,
		    "'#' starts a comment only at the start of a line; after a value use ';'");
	if (*value == '\0' && (sd->keys[idx].flags & KEY_LIST))
		return 0; /* the entries follow on indented lines */
	if (*value == '\0')
		return conf_fail(x, x->lineno, name,
		    "no value; give one, or remove the line to get the default");
	return sd->keys[idx].parse(x, &sd->keys[idx], conf_sect_ptr(x), value, 0);
}

static int
conf_continue(struct conf_ctx *x, const char *value)
{
	const struct key_def *k = &x->sect->keys[x->cont_key];

	/* "  uid = root" under "domains = ..." is an indented key, not a list entry. */
	if (!(k->flags & KEY_LIST) || strchr(value, '=') != NULL)
		return conf_fail(x, x->lineno, k->name,
		    "this indented line would go on with the value of %s from line %d; only "
		    "lists may go on over indented lines: remove the indentation",
		    k->name, x->key_line[x->cont_key]);
	return k->parse(x, k, conf_sect_ptr(x), value, 1);
}

static int
conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct conf_ctx *x = user;

	(void)section; /* ours, from the reader: inih's copy is cut at 49 bytes */
	if (x->err != 0 || name == NULL)
		return 1;
	if (x->kind == LINE_CONT && x->sect != NULL)
		conf_continue(x, value);
	else if (x->kind == LINE_KEY)
		conf_key(x, name, value);
	else
		conf_fail(x, x->lineno, NULL, "internal error: unexpected line from inih");
	return x->err == 0;
}

/* inih's find_chars_or_comment(): first of chars, or ';' after whitespace. */
static char *
conf_find(char *s, const char *chars)
{
	int was_space = 0;

	while (*s != '\0' && strchr(chars, *s) == NULL && !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

/* One line into x->raw: 1, or 0 at the end, or an error. */
static int
conf_read_line(struct conf_ctx *x, size_t *lenp)
{
	size_t len = 0;
	int ch;

	if ((ch = getc(x->f)) == EOF) {
		if (ferror(x->f))
			return x->err = dk_err_set(
			           DK_ERR_IO, "%s cannot be read: %s", x->c->path, strerror(errno));
		return 0;
	}
	if (++x->lineno > CONF_LINES_MAX)
		return conf_line_fail(x, "more than %d lines", CONF_LINES_MAX);
	for (; ch != EOF && ch != '\n'; ch = getc(x->f)) {
		if (len == CONF_RAW_MAX)
			return conf_line_fail(x, "line longer than %d bytes", CONF_RAW_MAX);
		if (ch == '\0')
			return conf_line_fail(x, "NUL byte in the line");
		x->raw[len++] = (char)ch;
	}
	if (ch == EOF && ferror(x->f))
		return x->err = dk_err_set(
		           DK_ERR_IO, "%s cannot be read: %s", x->c->path, strerror(errno));
	if (len > 0 && x->raw[len - 1] == '\r')
		len--;
	x->raw[len] = '\0';
	/* inih skips a UTF-8 byte order mark on the first line. */
	if (x->lineno == 1 && len >= 3 && memcmp(x->raw, "\xEF\xBB\xBF", 3) == 0) {
		memmove(x->raw, x->raw + 3, len - 2);
		len -= 3;
	}
	*lenp = len;
	return 1;
}

/* A "[...]" line; p points at '['. */
static int
conf_scan_section(struct conf_ctx *x, char *p)
{
	char *end = conf_find(p + 1, "]"), *rest;

	if (*end != ']')
		return conf_line_fail(x, "section header without a closing ']'; write [NAME]");
	*end = '\0';
	rest = end + 1;
	while (isspace((unsigned char)*rest))
		rest++;
	if (*rest != '\0' && *rest != ';')
		return conf_line_fail(
		    x, "text after the section header; put keys on lines of their own");
	return conf_section_start(x, p + 1);
}

/*
 * Sort the line the way inih will and do what must be done before inih sees
 * it.  Sets *pass to the text inih gets.
 */
static int
conf_scan_line(struct conf_ctx *x, size_t len, int num, const char **pass)
{
	char *p = x->raw, *end;
	size_t i;

	for (i = 0; i < len; i++)
		if (((unsigned char)p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
			return conf_line_fail(
			    x, "control character 0x%02x in the line; remove it", (unsigned)p[i]);
	while (isspace((unsigned char)*p))
		p++;
	*pass = x->raw;
	if (*p == '\0' || *p == ';' || *p == '#') {
		x->kind = LINE_BLANK;
		*pass = "";
		return 0;
	}
	if (x->have_key && p > x->raw) {
		x->kind = LINE_CONT;
		/* Older inih (Debian's r55) keeps inline comments on continuation lines. */
		end = conf_find(p, "");
		while (end > p && isspace((unsigned char)end[-1]))
			end--;
		*end = '\0';
		len = (size_t)(end - x->raw);
	} else if (*p == '[') {
		x->kind = LINE_SECTION;
		x->have_key = 0;
		/* inih only needs to see a section line; we keep the name. */
		*pass = "[s]";
		return conf_scan_section(x, p);
	} else {
		x->kind = LINE_KEY;
		end = conf_find(p, "=:");
		if (*end != '=' && *end != ':')
			return conf_line_fail(
			    x, "neither \"key = value\" nor \"[section]\"; check the syntax");
		x->have_key = end > p; /* inih's prev_name: the name is not empty */
	}
	/* inih wants room for "\r\n" and NUL; longer lines it would split or cut. */
	if (len + 3 > (size_t)num)
		return conf_line_fail(x,
		    "line longer than %d characters; split a long list over indented "
		    "continuation lines",
		    num - 3);
	return 0;
}

/* ini_reader: the next line, or NULL at the end or after the first problem. */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_ctx *x = stream;
	const char *pass = "";
	size_t len;

	if (x->err != 0 || num < 4)
		return NULL;
	if (conf_read_line(x, &len) != 1)
		return NULL;
	if (conf_scan_line(x, len, num, &pass) != 0)
		return NULL;
	/* conf_scan_line() made sure it fits */
	memcpy(str, pass, strlen(pass) + 1);
	return str;
}

/* ---- after the whole file ---- */

static int
conf_token_ref(struct conf_ctx *x, const char *name, int line, const char *key)
{
	if (name == NULL || dk_conf_token(x->c, name) != NULL)
		return 0;
	return conf_fail(x, line, key,
	    "there is no [token %s] section; name one of the [token NAME] sections or add it",
	    name);
}

/*
 * The environment is one per process: two tokens that need different
 * values of one variable cannot both be served, nor can two tokens on one
 * module (p11-kit-client.so reaching two servers) with different env.
 */
static const char *
env_of(const struct dk_conf_token *t, const char *entry)
{
	size_t i, nlen = strcspn(entry, "=");

	for (i = 0; i < t->nenv; i++)
		if (strncmp(t->env[i], entry, nlen) == 0 && t->env[i][nlen] == '=')
			return t->env[i] + nlen + 1;
	return NULL;
}

/* 0, or the first entry of a whose variable b sets to another value (or, same_module, not at all).
 */
static const char *
env_clash(const struct dk_conf_token *a, const struct dk_conf_token *b, int same_module)
{
	const char *w;
	size_t i;

	for (i = 0; i < a->nenv; i++) {
		w = env_of(b, a->env[i]);
		if (w == NULL ? same_module : strcmp(w, strchr(a->env[i], '=') + 1) != 0)
			return a->env[i];
	}
	return NULL;
}

static int
conf_check_env(struct conf_ctx *x)
{
	const struct dk_conf *c = x->c;
	const struct dk_conf_token *a, *b;
	const char *clash;
	size_t i, j;
	int same;

	for (i = 0; i < c->ntokens; i++) {
		for (j = 0; j < c->ntokens; j++) {
			a = &c->tokens[i];
			b = &c->tokens[j];
			same = strcmp(a->module, b->module) == 0;
			if (i == j || (clash = env_clash(a, b, same)) == NULL)
				continue;
			snprintf(x->label, sizeof(x->label), "token %s", a->name);
			if (env_of(b, clash) != NULL)
				return conf_fail(x, a->line, "env",
				    "%.*s differs from [token %s] (line %d), and the environment "
				    "is "
				    "one per process; give both the same value, or run one "
				    "dkimkeepd "
				    "per value",
				    (int)strcspn(clash, "="), clash, b->name, b->line);
			return conf_fail(x, a->line, "env",
			    "%.*s is not set for [token %s] (line %d) on the same module %s; a "
			    "module is loaded once per process, so two servers cannot be reached "
			    "through one client module: give both tokens the same env",
			    (int)strcspn(clash, "="), clash, b->name, b->line, a->module);
		}
	}
	x->label[0] = '\0';
	return 0;
}

static int
conf_check_domains(struct conf_ctx *x)
{
	struct dk_conf *c = x->c;
	struct dk_conf_domain *d;
	size_t i;
	int r;

	for (i = 0; i < c->ndomains; i++) {
		d = &c->domains[i];
		snprintf(x->label, sizeof(x->label), "domain %s", d->name);
		if ((r = conf_token_ref(x, d->primary, x->dlines[i].primary, "primary")) != 0 ||
		    (r = conf_token_ref(x, d->backup, x->dlines[i].backup, "backup")) != 0)
			return r;
		if (d->dns_publish == DK_PUBLISH_RFC2136 && c->dns.server == NULL)
			return conf_fail(x, x->dlines[i].dns_publish, "dns_publish",
			    "rfc2136 needs the primary server: add \"server = HOST:PORT\" to "
			    "[dns], "
			    "or use dns_publish = manual");
		if (d->dns_publish == DK_PUBLISH_COMMAND && c->dns.publish_command == NULL)
			return conf_fail(x, x->dlines[i].dns_publish, "dns_publish",
			    "command needs a program: add \"publish_command = PATH\" to [dns], "
			    "or use dns_publish = manual");
	}
	return 0;
}

static int
conf_domain_cmp(const void *a, const void *b)
{
	const struct dk_conf_domain *da = a, *db = b;

	return strcmp(da->name, db->name);
}

/* Sort the domains for dk_conf_domain(); a name twice is an error at its later line. */
static int
conf_sort_domains(struct conf_ctx *x)
{
	struct dk_conf *c = x->c;
	struct dk_conf_domain *a, *b;
	size_t i;

	if (c->ndomains > 1)
		qsort(c->domains, c->ndomains, sizeof(c->domains[0]), conf_domain_cmp);
	for (i = 1; i < c->ndomains; i++) {
		a = &c->domains[i - 1];
		b = &c->domains[i];
		if (strcmp(a->name, b->name) != 0)
			continue;
		snprintf(x->label, sizeof(x->label), "domain %s", a->name);
		return conf_fail(x, a->line > b->line ? a->line : b->line, NULL,
		    "section appears twice (first on line %d); merge them",
		    a->line < b->line ? a->line : b->line);
	}
	return 0;
}

static int
conf_defaults(struct conf_ctx *x)
{
	struct dk_conf *c = x->c;
	char *p;
	int r = 0;

	if (c->daemon.socket == NULL)
		r = conf_set_str(x, &c->daemon.socket, CONF_DEFAULT_SOCKET);
	if (r == 0 && c->milter.socket == NULL)
		r = conf_set_str(x, &c->milter.socket, CONF_DEFAULT_MSOCKET);
	if (r == 0 && c->milter.client_socket == NULL)
		r = conf_set_str(x, &c->milter.client_socket, c->daemon.socket);
	if (r == 0 && c->milter.ninternal_hosts == 0) {
		if ((p = strdup("127.0.0.0/8")) == NULL)
			return conf_nomem(x);
		if ((r = conf_list_add(x, &milter_keys[2], &c->milter.internal_hosts,
		         &c->milter.ninternal_hosts, p)) != 0)
			return r;
		if ((p = strdup("::1/128")) == NULL)
			return conf_nomem(x);
		r = conf_list_add(
		    x, &milter_keys[2], &c->milter.internal_hosts, &c->milter.ninternal_hosts, p);
	}
	return r;
}

static int
conf_finish(struct conf_ctx *x)
{
	int r;

	if (x->sect != NULL && (r = conf_section_finish(x)) != 0)
		return r;
	x->sect = NULL;
	if ((r = conf_check_domains(x)) != 0 || (r = conf_sort_domains(x)) != 0 ||
	    (r = conf_check_env(x)) != 0)
		return r;
	snprintf(x->label, sizeof(x->label), "daemon");
	if ((r = conf_token_ref(
	         x, x->c->daemon.audit_token, x->c->daemon.audit_token_line, "audit_token")) != 0)
		return r;
	x->label[0] = '\0';
	return conf_defaults(x);
}

/* c->path as given, c->dir the canonical directory the file is in. */
static int
conf_paths(struct dk_conf *c, const char *path)
{
	const char *slash = strrchr(path, '/');
	char *d = NULL;
	int r = 0;

	if ((c->path = strdup(path)) == NULL)
		goto nomem;
	if (slash == NULL)
		d = strdup(".");
	else if (slash == path)
		d = strdup("/");
	else
		d = strndup(path, (size_t)(slash - path));
	if (d == NULL)
		goto nomem;
	if ((c->dir = realpath(d, NULL)) == NULL)
		r = dk_err_set(
		    DK_ERR_IO, "the directory of %s cannot be resolved: %s", path, strerror(errno));
	goto out;
nomem:
	r = dk_err_set(DK_ERR_NOMEM, "out of memory loading %s", path);
out:
	free(d);
	return r;
}

static void
conf_init_defaults(struct dk_conf *c)
{
	c->daemon.socket_mode = 0660;
	c->daemon.workers = 2;
	c->daemon.queue = 256;
	c->daemon.max_connections = 1024;
	c->daemon.audit_fail_closed = 1;
	c->daemon.audit_checkpoint = 1000;
	c->daemon.sign_timeout_ms = 2000;
	c->daemon.health_interval = 5;
	c->daemon.step_interval = 60;
	c->milter.sign = DK_MILTER_SIGN_LOCAL;
	c->milter.on_error_accept = 0;
}

/* ---- public ---- */

const char *
dk_conf_default_path(void)
{
	const char *p = getenv("DKIMKEEP_CONF");

	return p != NULL && p[0] != '\0' ? p : DK_CONF_DEFAULT_PATH;
}

int
dk_conf_load(const char *path, struct dk_conf **out)
{
	struct conf_ctx x;
	struct dk_conf *c = NULL;
	struct stat st;
	int r, ir;

	memset(&x, 0, sizeof(x));
	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		r = dk_err_set(DK_ERR_NOMEM, "out of memory loading %s", path);
		goto out;
	}
	conf_init_defaults(c);
	x.c = c;
	if ((x.f = fopen(path, "re")) == NULL) {
		r = dk_err_set(DK_ERR_IO,
		    "config file %s cannot be opened: %s; give the right file with -c or "
		    "$DKIMKEEP_CONF",
		    path, strerror(errno));
		goto out;
	}
	if (fstat(fileno(x.f), &st) != 0 || !S_ISREG(st.st_mode)) {
		r = dk_err_set(DK_ERR_IO, "config file %s is not a regular file", path);
		goto out;
	}
	if (st.st_size > CONF_FILE_MAX) {
		r = dk_err_set(
		    DK_ERR_CONFIG, "config file %s is larger than %ld bytes", path, CONF_FILE_MAX);
		goto out;
	}
	if ((r = conf_paths(c, path)) != 0)
		goto out;
	ir = ini_parse_stream(conf_reader, &x, conf_handler, &x);
	if (x.err == 0 && ir != 0) {
		x.lineno = ir > 0 ? ir : x.lineno;
		conf_line_fail(&x, "cannot be parsed (inih error %d); check the syntax", ir);
	}
	if (x.err == 0)
		conf_finish(&x);
	if ((r = x.err) != 0)
		goto out;
	*out = c;
	c = NULL;
out:
	if (x.f != NULL)
		fclose(x.f);
	free(x.dlines);
	dk_conf_free(c);
	return r;
}

void
dk_conf_free(struct dk_conf *c)
{
	size_t i, j;

	if (c == NULL)
		return;
	free(c->path);
	free(c->dir);
	free(c->daemon.socket);
	free(c->daemon.socket_group);
	free(c->daemon.audit_log);
	free(c->daemon.audit_token);
	free(c->daemon.user);
	for (i = 0; i < c->ntokens; i++) {
		free(c->tokens[i].name);
		free(c->tokens[i].module);
		free(c->tokens[i].uri);
		free(c->tokens[i].pin_file);
		for (j = 0; j < c->tokens[i].nenv; j++)
			free(c->tokens[i].env[j]);
		free(c->tokens[i].env);
	}
	free(c->tokens);
	for (i = 0; i < c->ndomains; i++) {
		free(c->domains[i].name);
		free(c->domains[i].primary);
		free(c->domains[i].backup);
		free(c->domains[i].selector_template);
		free(c->domains[i].headers);
		free(c->domains[i].oversign);
	}
	free(c->domains);
	for (i = 0; i < c->nclients; i++) {
		free(c->clients[i].name);
		conf_list_free(c->clients[i].domains, c->clients[i].ndomains);
	}
	free(c->clients);
	free(c->dns.server);
	free(c->dns.tsig_key_file);
	free(c->dns.resolver);
	free(c->dns.publish_command);
	free(c->dns.notify_command);
	free(c->milter.socket);
	conf_list_free(c->milter.internal_hosts, c->milter.ninternal_hosts);
	free(c->milter.client_socket);
	free(c);
}

int
dk_conf_token_setenv(const struct dk_conf_token *t)
{
	char name[ENV_NAME_MAX + 1];
	const char *val, *cur;
	size_t i, nlen;

	for (i = 0; i < t->nenv; i++) {
		nlen = strcspn(t->env[i], "=");
		if (nlen > ENV_NAME_MAX)
			return dk_err_set(
			    DK_ERR_INVALID, "env entry of [token %s] too long", t->name);
		memcpy(name, t->env[i], nlen);
		name[nlen] = '\0';
		val = t->env[i] + nlen + 1;
		/* setenv() is not thread-safe: touch the environment only when it changes. */
		if ((cur = getenv(name)) != NULL && strcmp(cur, val) == 0)
			continue;
		if (setenv(name, val, 1) != 0)
			return dk_err_set(DK_ERR_NOMEM, "setting %s for [token %s]: out of memory",
			    name, t->name);
		dk_log_debug("[token %s]: %s=%s", t->name, name, val);
	}
	return 0;
}

const struct dk_conf_token *
dk_conf_token(const struct dk_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->ntokens; i++)
		if (strcmp(c->tokens[i].name, name) == 0)
			return &c->tokens[i];
	return NULL;
}

const struct dk_conf_domain *
dk_conf_domain(const struct dk_conf *c, const char *domain)
{
	struct dk_conf_domain key;
	const struct dk_conf_domain *d;
	char name[CONF_DOMAIN_MAX + 1];
	char *p;
	size_t n = strlen(domain);

	if (n == 0 || n > CONF_DOMAIN_MAX || c->ndomains == 0)
		return NULL;
	memcpy(name, domain, n + 1);
	conf_lower(name);
	memset(&key, 0, sizeof(key));
	for (p = name; p != NULL && *p != '\0';) {
		key.name = p;
		d = bsearch(&key, c->domains, c->ndomains, sizeof(c->domains[0]), conf_domain_cmp);
		if (d != NULL)
			return d;
		if ((p = strchr(p, '.')) != NULL)
			p++;
	}
	return NULL;
}

const struct dk_conf_client *
dk_conf_client_for(const struct dk_conf *c, uid_t uid, gid_t gid)
{
	const struct dk_conf_client *cl;
	size_t i;

	for (i = 0; i < c->nclients; i++) {
		cl = &c->clients[i];
		if (!cl->has_uid && !cl->has_gid)
			continue;
		if (cl->has_uid && cl->uid != uid)
			continue;
		if (cl->has_gid && cl->gid != gid)
			continue;
		return cl;
	}
	return NULL;
}

int
dk_conf_client_allows(const struct dk_conf_client *cl, const char *domain)
{
	size_t i, dl = strlen(domain), sl;
	const char *pat;

	if (dl == 0)
		return 0;
	for (i = 0; i < cl->ndomains; i++) {
		pat = cl->domains[i];
		if (strcmp(pat, "*") == 0)
			return 1;
		if (strncmp(pat, "*.", 2) != 0) {
			if (strcasecmp(pat, domain) == 0)
				return 1;
			continue;
		}
		/* "*.example.com": a.example.com, not example.com nor badexample.com */
		sl = strlen(pat + 1); /* ".example.com" */
		if (dl > sl && strcasecmp(domain + dl - sl, pat + 1) == 0)
			return 1;
	}
	return 0;
}
