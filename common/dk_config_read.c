/*
 * dk_config_read.c - the config file line by line as inih sees it: sections
 * opened and finished, keys handed to their parsers (dk_config_keys.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dk_config_int.h"
#include "common/dk_err.h"

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

/*
 * A new [token NAME] or [client NAME] in the array *arr of *n structs of size
 * sz, each with a char *name at name_off and an int line at line_off: the name
 * must be valid and not taken.  what: "token" or "client".
 */
static int
conf_new_named(struct conf_ctx *x, const char *name, const char *what, void **arr, size_t *n,
    size_t *cap, size_t sz, size_t max, size_t name_off, size_t line_off)
{
	char bracket[16], *el;
	size_t i;
	int r;

	if (!conf_name_ok(name))
		return conf_fail(x, x->lineno, NULL,
		    "\"%s\" is not a %s name; use 1 to %d letters, digits, '.', '_' or '-'", name,
		    what, CONF_NAME_MAX);
	for (i = 0; i < *n; i++) {
		el = (char *)*arr + i * sz;
		if (strcmp(*(char **)(void *)(el + name_off), name) == 0)
			return conf_fail(x, x->lineno, NULL,
			    "section appears twice (first on line %d); merge them",
			    *(int *)(void *)(el + line_off));
	}
	snprintf(bracket, sizeof(bracket), "[%s]", what);
	if ((r = conf_grow(x, arr, *n, cap, sz, max, bracket)) != 0)
		return r;
	el = (char *)*arr + *n * sz;
	memset(el, 0, sz);
	if ((*(char **)(void *)(el + name_off) = strdup(name)) == NULL)
		return conf_nomem(x);
	*(int *)(void *)(el + line_off) = x->lineno;
	(*n)++;
	return 0;
}

static int
conf_new_token(struct conf_ctx *x, const char *name)
{
	struct dk_conf *c = x->c;
	void *arr = c->tokens;
	int r;

	r = conf_new_named(x, name, "token", &arr, &c->ntokens, &x->tokens_cap,
	    sizeof(c->tokens[0]), DK_CONF_MAX_TOKENS, offsetof(struct dk_conf_token, name),
	    offsetof(struct dk_conf_token, line));
	c->tokens = arr;
	return r;
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
	void *arr = c->clients;
	int r;

	r = conf_new_named(x, name, "client", &arr, &c->nclients, &x->clients_cap,
	    sizeof(c->clients[0]), DK_CONF_MAX_CLIENTS, offsetof(struct dk_conf_client, name),
	    offsetof(struct dk_conf_client, line));
	c->clients = arr;
	return r;
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
int
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
	for (i = 0; i < conf_nsections; i++)
		if (strcmp(word, conf_sections[i].word) == 0)
			sd = &conf_sections[i];
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

int
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
char *
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
