/*
 * dk_config.c - loading and checking the INI configuration file: the
 * file, the checks once all of it is read, and the lookups.
 *
 * inih does the INI syntax.  Our reader callback hands it one line at a
 * time, so we know the line of every key; it also keeps the section names
 * itself (inih cuts them at 49 bytes, too short for a domain) and refuses
 * lines that inih would silently split at its line limit.
 */
#include <sys/stat.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/dk_config_int.h"
#include "common/dk_err.h"
#include "common/dk_log.h"

static int conf_vfail(struct conf_ctx *x, int line, const char *label, const char *key,
    const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

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
int
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
int
conf_line_fail(struct conf_ctx *x, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = conf_vfail(x, x->lineno, "", NULL, fmt, ap);
	va_end(ap);
	return r;
}

int
conf_nomem(struct conf_ctx *x)
{
	if (x->err == 0)
		x->err = dk_err_set(DK_ERR_NOMEM, "out of memory loading %s", x->c->path);
	return x->err;
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
		if ((r = conf_list_add(x, conf_internal_hosts_key, &c->milter.internal_hosts,
		         &c->milter.ninternal_hosts, p)) != 0)
			return r;
		if ((p = strdup("::1/128")) == NULL)
			return conf_nomem(x);
		r = conf_list_add(x, conf_internal_hosts_key, &c->milter.internal_hosts,
		    &c->milter.ninternal_hosts, p);
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
	c->dns.ttl = 300;
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
	return dk_conf_load_flags(path, 0, out);
}

int
dk_conf_load_flags(const char *path, unsigned flags, struct dk_conf **out)
{
	struct conf_ctx x;
	struct dk_conf *c = NULL;
	struct stat st;
	int r, ir;

	memset(&x, 0, sizeof(x));
	x.flags = flags;
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
	/* It names the PKCS#11 module the daemon loads: its writer runs code there. */
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		r = dk_err_set(DK_ERR_CONFIG,
		    "config file %s is writable by %s (mode %04o): whoever can write it chooses "
		    "the "
		    "PKCS#11 module dkimkeep loads; run \"chmod go-w %s\"",
		    path, (st.st_mode & S_IWOTH) != 0 ? "others" : "its group",
		    (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		r = dk_err_set(DK_ERR_CONFIG,
		    "config file %s belongs to uid %u, neither root nor this process's user (%u): "
		    "its owner chooses the PKCS#11 module dkimkeep loads; run \"chown root %s\"",
		    path, (unsigned)st.st_uid, (unsigned)geteuid(), path);
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
