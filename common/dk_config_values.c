/*
 * dk_config_values.c - config value helpers (numbers, names, domains, paths,
 * lists, users) and the key parsers that serve any section.
 */
#include <sys/stat.h>
#include <sys/un.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dk_config_int.h"
#include "common/dk_err.h"
#include "common/dk_time.h"

/* ---- small value helpers ---- */

int
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
char *
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
int
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

void
conf_list_free(char **items, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

/* A whole decimal number in [min, max]; -1 otherwise. */
int
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

char *
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

void
conf_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

int
conf_has_space(const char *s)
{
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s))
			return 1;
	return 0;
}

/* Token and client names: letters, digits, '.', '_' and '-'. */
int
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
const char *
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
int
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
int
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
int
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

/* Put the string *p into key k's field of section s, freeing what was there. */
void
conf_store(void *s, const struct key_def *k, char **p)
{
	free(*FIELD(s, k, char *));
	*FIELD(s, k, char *) = *p;
	*p = NULL;
}

/* A whole number from k->min to k->max, into an int (an int64_t with KEY_INT64). */
int
key_int(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	int64_t n;

	(void)cont;
	if (conf_number(v, k->min, k->max, &n) != 0)
		return KEY_FAIL(x, k, "\"%s\" is not a whole number from %lld to %lld", v,
		    (long long)k->min, (long long)k->max);
	if (k->flags & KEY_INT64)
		*FIELD(s, k, int64_t) = n;
	else
		*FIELD(s, k, int) = (int)n;
	return 0;
}

int
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

int
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
int
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
int
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
int
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
int
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
 * The secret itself is not read here; with DK_CONF_NO_SECRET_CHECK the file
 * is not examined either.
 */
int
key_secret_file(struct conf_ctx *x, const struct key_def *k, void *s, const char *v, int cont)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	struct stat st;
	char *p = NULL;
	int r = 0;

	(void)cont;
	if (x->flags & DK_CONF_NO_SECRET_CHECK) {
		/* Named only (dk_conf_load_flags): the caller never opens it. */
		if ((r = conf_abspath(x, k, v, &p)) == 0)
			conf_store(s, k, &p);
		goto out;
	}
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
