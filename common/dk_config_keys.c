/*
 * dk_config_keys.c - the parsers of each section's own keys, and the tables
 * of every section and key (INTERFACE.md "Config file").
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/dk_config_int.h"
#include "common/dk_err.h"

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
    {"sign_timeout_ms", key_int, DMN(sign_timeout_ms), 10, 600000, KEY_INT64},
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
    {"ttl", key_duration, DNS(ttl), 30, 86400, 0},
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

const struct sect_def conf_sections[] = {
    {"daemon", SECT_DAEMON, 0, KEYS(daemon_keys)},
    {"token", SECT_TOKEN, 1, KEYS(token_keys)},
    {"domain", SECT_DOMAIN, 1, KEYS(domain_keys)},
    {"client", SECT_CLIENT, 1, KEYS(client_keys)},
    {"dns", SECT_DNS, 0, KEYS(dns_keys)},
    {"milter", SECT_MILTER, 0, KEYS(milter_keys)},
};

const size_t conf_nsections = sizeof(conf_sections) / sizeof(conf_sections[0]);
/* [milter] internal_hosts=, for the default list. */
const struct key_def *const conf_internal_hosts_key = &milter_keys[2];
