/*
 * test_config.c - unit tests for common/dk_config: parsing, checks, lookups.
 *
 * Every test writes its config files into a fresh mkdtemp() directory, with
 * PIN files (0600), a stand-in PKCS#11 module and executable commands.
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/dk_config.h"
#include "common/dk_err.h"
#include "dkim/dkim.h"

/* dk_conf_domain.algs is a bit set of 1 << enum dkim_alg. */
_Static_assert(DK_CONF_ALG_RSA_SHA256 == 1u << DKIM_ALG_RSA_SHA256, "rsa bit");
_Static_assert(DK_CONF_ALG_ED25519_SHA256 == 1u << DKIM_ALG_ED25519_SHA256, "ed25519 bit");

struct fx {
	char dir[128];
	char conf[192];
};

/* A token section and a domain that are valid, for tests about other things. */
#define BASE                                                                                       \
	"[token primary]\n"                                                                        \
	"module = mod.so\n"                                                                        \
	"uri = pkcs11:token=dkim-primary\n"                                                        \
	"pin_file = primary.pin\n"                                                                 \
	"\n"                                                                                       \
	"[domain example.com]\n"                                                                   \
	"algorithms = rsa-sha256\n"                                                                \
	"primary = primary\n" /* line 8 */

static void
write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/dkconf-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->conf, sizeof(fx->conf), "%s/dkimkeep.conf", fx->dir);
	write_file(fx->dir, "primary.pin", "1234\n", 0600);
	write_file(fx->dir, "backup.pin", "5678\n", 0400);
	write_file(fx->dir, "tsig.key", "k hmac-sha256 c2VjcmV0\n", 0600);
	write_file(fx->dir, "mod.so", "not really a module\n", 0644);
	write_file(fx->dir, "publish.sh", "#!/bin/sh\nexit 0\n", 0755);
	write_file(fx->dir, "notify.sh", "#!/bin/sh\nexit 0\n", 0755);
	unsetenv("CREDENTIALS_DIRECTORY");
	*state = fx;
	return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	unsetenv("CREDENTIALS_DIRECTORY");
	free(fx);
	return 0;
}

static struct dk_conf *
load_text(struct fx *fx, const char *text)
{
	struct dk_conf *c = NULL;
	int r;

	write_file(fx->dir, "dkimkeep.conf", text, 0644);
	r = dk_conf_load(fx->conf, &c);
	if (r != 0)
		fail_msg("dk_conf_load: %d: %s", r, dk_err_detail());
	assert_non_null(c);
	return c;
}

/*
 * Loading text fails with DK_ERR_CONFIG; the detail starts with
 * "CONF:LINE: WHERE" and holds needle.
 */
static void
expect_err(struct fx *fx, const char *text, int line, const char *where, const char *needle)
{
	struct dk_conf *c = NULL;
	char prefix[PATH_MAX + 256];
	const char *d;
	int r;

	write_file(fx->dir, "dkimkeep.conf", text, 0644);
	r = dk_conf_load(fx->conf, &c);
	d = dk_err_detail();
	assert_null(c);
	if (r != DK_ERR_CONFIG)
		fail_msg("want DK_ERR_CONFIG, got %d (%s)", r, d);
	snprintf(prefix, sizeof(prefix), "%s:%d: %s", fx->conf, line, where);
	if (strncmp(d, prefix, strlen(prefix)) != 0)
		fail_msg("detail \"%s\" does not start with \"%s\"", d, prefix);
	if (needle != NULL && strstr(d, needle) == NULL)
		fail_msg("detail \"%s\" does not contain \"%s\"", d, needle);
}

/* ---- valid files ---- */

static void
test_interface_example(void **state)
{
	struct fx *fx = *state;
	const struct dk_conf_domain *d;
	const struct dk_conf_token *t;
	const struct dk_conf_client *cl;
	struct dk_conf *c;
	char text[8192], path[PATH_MAX];

	/* INTERFACE.md's example, comments and all; files point into the temp dir. */
	snprintf(text, sizeof(text),
	    "[daemon]\n"
	    "socket = /run/dkimkeep/sign.sock   ; Unix stream socket\n"
	    "socket_mode = 0660\n"
	    "socket_group = root               ; optional\n"
	    "workers = 2                        ; signing threads, one PKCS#11 session each\n"
	    "queue = 256                        ; queued requests beyond this get BUSY\n"
	    "max_connections = 1024\n"
	    "audit_log = /var/log/dkimkeep/audit.jsonl\n"
	    "audit_fail = closed                ; closed: refuse to sign when the audit record "
	    "cannot be written\n"
	    "audit_checkpoint = 1000            ; a token-signed checkpoint at least every N "
	    "records\n"
	    "\n"
	    "[token primary]                    ; the name after \"token\" is free\n"
	    "module = %s/mod.so\n"
	    "uri = pkcs11:token=dkim-primary    ; RFC 7512 URI selecting the token\n"
	    "pin_file = %s/primary.pin\n"
	    "\n"
	    "[token backup]\n"
	    "module = %s/mod.so\n"
	    "uri = pkcs11:token=dkim-backup\n"
	    "pin_file = %s/backup.pin\n"
	    "\n"
	    "[domain example.com]\n"
	    "algorithms = rsa-sha256, ed25519-sha256   ; one DKIM-Signature per algorithm\n"
	    "primary = primary                         ; token holding the active keys\n"
	    "backup = backup                           ; token holding the standby keys\n"
	    "selector_template = s{date:%%Y%%m}-{alg}   ; names of new selectors ({alg}: rsa | "
	    "ed25519)\n"
	    "rotate_every = 90d                        ; 30d for sensitive domains\n"
	    "publish_wait = 1h                         ; a new key is published this long\n"
	    "retire_after = 7d                         ; old key stays published this long\n"
	    "destroy_after = 30d                       ; revoked key is destroyed after\n"
	    "dns_publish = rfc2136                     ; rfc2136 | command | manual\n"
	    "headers = "
	    "from:to:cc:subject:date:message-id:reply-to:in-reply-to:references:mime-version:"
	    "content-type\n"
	    "oversign = from:subject:date:to:cc:reply-to\n"
	    "\n"
	    "[dns]\n"
	    "server = 127.0.0.1:53              ; primary server for RFC 2136 updates\n"
	    "tsig_key_file = %s/tsig.key    ; \"name algorithm base64secret\"\n"
	    "resolver = 127.0.0.1:53            ; where `dns check` looks records up\n"
	    "publish_command = %s/publish.sh   ; for dns_publish = command\n"
	    "notify_command = %s/notify.sh      ; told about each rotation step\n"
	    "\n"
	    "[client postfix]                   ; who may sign for what; no matching client = "
	    "refused\n"
	    "uid = root                         ; user name or number, checked with SO_PEERCRED\n"
	    "domains = example.com, *.example.com\n"
	    "rate = 500/s                       ; optional per-client limit\n",
	    fx->dir, fx->dir, fx->dir, fx->dir, fx->dir, fx->dir, fx->dir);
	c = load_text(fx, text);

	assert_string_equal(c->path, fx->conf);
	assert_string_equal(c->dir, fx->dir);
	assert_string_equal(c->daemon.socket, "/run/dkimkeep/sign.sock");
	assert_int_equal(c->daemon.socket_mode, 0660);
	assert_string_equal(c->daemon.socket_group, "root");
	assert_int_equal(c->daemon.workers, 2);
	assert_int_equal(c->daemon.queue, 256);
	assert_int_equal(c->daemon.max_connections, 1024);
	assert_string_equal(c->daemon.audit_log, "/var/log/dkimkeep/audit.jsonl");
	assert_int_equal(c->daemon.audit_fail_closed, 1);
	assert_int_equal(c->daemon.audit_checkpoint, 1000);
	assert_int_equal(c->daemon.line, 1);

	assert_int_equal(c->ntokens, 2);
	t = dk_conf_token(c, "primary");
	assert_non_null(t);
	assert_int_equal(t->line, 12);
	snprintf(path, sizeof(path), "%s/mod.so", fx->dir);
	assert_string_equal(t->module, path);
	assert_string_equal(t->uri, "pkcs11:token=dkim-primary");
	snprintf(path, sizeof(path), "%s/primary.pin", fx->dir);
	assert_string_equal(t->pin_file, path);
	t = dk_conf_token(c, "backup");
	assert_non_null(t);
	assert_string_equal(t->uri, "pkcs11:token=dkim-backup");
	snprintf(path, sizeof(path), "%s/backup.pin", fx->dir);
	assert_string_equal(t->pin_file, path);
	assert_null(dk_conf_token(c, "third"));

	assert_int_equal(c->ndomains, 1);
	d = dk_conf_domain(c, "example.com");
	assert_non_null(d);
	assert_string_equal(d->name, "example.com");
	assert_int_equal(d->line, 22);
	assert_int_equal(d->algs, DK_CONF_ALG_RSA_SHA256 | DK_CONF_ALG_ED25519_SHA256);
	assert_string_equal(d->primary, "primary");
	assert_string_equal(d->backup, "backup");
	assert_string_equal(d->selector_template, "s{date:%Y%m}-{alg}");
	assert_int_equal(d->rotate_every, 90 * 86400);
	assert_int_equal(d->publish_wait, 3600);
	assert_int_equal(d->retire_after, 7 * 86400);
	assert_int_equal(d->destroy_after, 30 * 86400);
	assert_int_equal(d->dns_publish, DK_PUBLISH_RFC2136);
	assert_string_equal(d->headers, "from:to:cc:subject:date:message-id:reply-to:in-reply-to:"
	                                "references:mime-version:content-type");
	assert_string_equal(d->oversign, "from:subject:date:to:cc:reply-to");

	assert_string_equal(c->dns.server, "127.0.0.1:53");
	snprintf(path, sizeof(path), "%s/tsig.key", fx->dir);
	assert_string_equal(c->dns.tsig_key_file, path);
	assert_string_equal(c->dns.resolver, "127.0.0.1:53");
	snprintf(path, sizeof(path), "%s/publish.sh", fx->dir);
	assert_string_equal(c->dns.publish_command, path);
	snprintf(path, sizeof(path), "%s/notify.sh", fx->dir);
	assert_string_equal(c->dns.notify_command, path);

	assert_int_equal(c->nclients, 1);
	cl = &c->clients[0];
	assert_string_equal(cl->name, "postfix");
	assert_int_equal(cl->has_uid, 1);
	assert_int_equal(cl->uid, 0);
	assert_int_equal(cl->has_gid, 0);
	assert_int_equal(cl->ndomains, 2);
	assert_string_equal(cl->domains[0], "example.com");
	assert_string_equal(cl->domains[1], "*.example.com");
	assert_true(cl->rate > 499.99 && cl->rate < 500.01);
	dk_conf_free(c);
}

static void
test_other_keys(void **state)
{
	struct fx *fx = *state;
	const struct dk_conf_domain *d;
	struct dk_conf *c;
	char path[PATH_MAX];

	c = load_text(fx, BASE "backup = primary\n"
	                       "canonicalization = simple/relaxed\n"
	                       "rsa_bits = 3072\n"
	                       "dns_publish = command\n"
	                       "headers = From:Subject\n"
	                       "oversign =\n"
	                       "[daemon]\n"
	                       "sign_timeout_ms = 1500\n"
	                       "health_interval = 10s\n"
	                       "step_interval = 2m\n"
	                       "user = root\n"
	                       "[dns]\n"
	                       "publish_command = publish.sh\n"
	                       "server = [::1]:5353\n"
	                       "resolver = ns1.example.net\n"
	                       "[milter]\n"
	                       "socket = inet:8891@localhost\n"
	                       "sign = authenticated\n"
	                       "internal_hosts = 10.0.0.0/8, 192.168.1.7, 2001:db8::/32\n"
	                       "on_error = accept\n"
	                       "client_socket = run/sign.sock\n"
	                       "[client gidonly]\n"
	                       "gid = 0\n"
	                       "domains = *\n"
	                       "rate = 30/m\n");
	d = dk_conf_domain(c, "example.com");
	assert_non_null(d);
	assert_string_equal(d->backup, "primary");
	assert_int_equal(d->canon_header, 0);
	assert_int_equal(d->canon_body, 1);
	assert_int_equal(d->rsa_bits, 3072);
	assert_int_equal(d->dns_publish, DK_PUBLISH_COMMAND);
	assert_string_equal(d->headers, "from:subject");
	assert_string_equal(d->oversign, "");
	assert_int_equal(c->daemon.sign_timeout_ms, 1500);
	assert_int_equal(c->daemon.health_interval, 10);
	assert_int_equal(c->daemon.step_interval, 120);
	assert_string_equal(c->daemon.user, "root");
	assert_string_equal(c->dns.server, "[::1]:5353");
	assert_string_equal(c->dns.resolver, "ns1.example.net:53");
	assert_string_equal(c->milter.socket, "inet:8891@localhost");
	assert_int_equal(c->milter.sign, DK_MILTER_SIGN_AUTHENTICATED);
	assert_int_equal(c->milter.ninternal_hosts, 3);
	assert_string_equal(c->milter.internal_hosts[0], "10.0.0.0/8");
	assert_string_equal(c->milter.internal_hosts[1], "192.168.1.7/32");
	assert_string_equal(c->milter.internal_hosts[2], "2001:db8::/32");
	assert_int_equal(c->milter.on_error_accept, 1);
	snprintf(path, sizeof(path), "%s/run/sign.sock", fx->dir);
	assert_string_equal(c->milter.client_socket, path);
	assert_int_equal(c->clients[0].has_uid, 0);
	assert_int_equal(c->clients[0].has_gid, 1);
	assert_int_equal(c->clients[0].gid, 0);
	assert_true(c->clients[0].rate > 0.49 && c->clients[0].rate < 0.51);
	dk_conf_free(c);

	/* "relaxed" alone is relaxed/simple (RFC 6376 §3.5); a bare path is a unix: socket */
	c = load_text(fx, BASE "canonicalization = relaxed\n"
	                       "[milter]\nsocket = milter.sock\n"
	                       "[client c]\nuid = 7\ndomains = example.com\nrate = 1000/h\n");
	assert_int_equal(c->domains[0].canon_header, 1);
	assert_int_equal(c->domains[0].canon_body, 0);
	snprintf(path, sizeof(path), "unix:%s/milter.sock", fx->dir);
	assert_string_equal(c->milter.socket, path);
	assert_true(c->clients[0].rate > 0.27 && c->clients[0].rate < 0.28);
	dk_conf_free(c);
}

static void
test_defaults(void **state)
{
	struct fx *fx = *state;
	const struct dk_conf_domain *d;
	struct dk_conf *c;

	c = load_text(fx, BASE);
	assert_string_equal(c->daemon.socket, "/run/dkimkeep/sign.sock");
	assert_int_equal(c->daemon.socket_mode, 0660);
	assert_null(c->daemon.socket_group);
	assert_int_equal(c->daemon.workers, 2);
	assert_int_equal(c->daemon.queue, 256);
	assert_int_equal(c->daemon.max_connections, 1024);
	assert_null(c->daemon.audit_log);
	assert_int_equal(c->daemon.audit_fail_closed, 1);
	assert_int_equal(c->daemon.audit_checkpoint, 1000);
	assert_int_equal(c->daemon.sign_timeout_ms, 2000);
	assert_int_equal(c->daemon.health_interval, 5);
	assert_int_equal(c->daemon.step_interval, 60);
	assert_null(c->daemon.user);
	assert_int_equal(c->daemon.line, 0);

	d = &c->domains[0];
	assert_int_equal(d->algs, DK_CONF_ALG_RSA_SHA256);
	assert_null(d->backup);
	assert_string_equal(d->selector_template, "s{date:%Y%m}-{alg}");
	assert_int_equal(d->rotate_every, 90 * 86400);
	assert_int_equal(d->publish_wait, 3600);
	assert_int_equal(d->retire_after, 7 * 86400);
	assert_int_equal(d->destroy_after, 30 * 86400);
	assert_int_equal(d->dns_publish, DK_PUBLISH_MANUAL);
	assert_string_equal(d->headers, DK_CONF_DEFAULT_HEADERS);
	assert_string_equal(d->oversign, DK_CONF_DEFAULT_OVERSIGN);
	assert_int_equal(d->rsa_bits, 2048);
	assert_int_equal(d->canon_header, 1);
	assert_int_equal(d->canon_body, 1);

	assert_null(c->dns.server);
	assert_null(c->dns.tsig_key_file);
	assert_null(c->dns.resolver);
	assert_null(c->dns.publish_command);
	assert_null(c->dns.notify_command);

	assert_string_equal(c->milter.socket, "unix:/run/dkimkeep-milter/milter.sock");
	assert_int_equal(c->milter.sign, DK_MILTER_SIGN_LOCAL);
	assert_int_equal(c->milter.ninternal_hosts, 2);
	assert_string_equal(c->milter.internal_hosts[0], "127.0.0.0/8");
	assert_string_equal(c->milter.internal_hosts[1], "::1/128");
	assert_int_equal(c->milter.on_error_accept, 0);
	assert_string_equal(c->milter.client_socket, "/run/dkimkeep/sign.sock");
	assert_int_equal(c->nclients, 0);
	dk_conf_free(c);

	/* the milter's daemon socket follows [daemon] socket, wherever it is set */
	c = load_text(fx, "[milter]\nsign = all\n[daemon]\nsocket = /tmp/x.sock\n" BASE);
	assert_string_equal(c->milter.client_socket, "/tmp/x.sock");
	dk_conf_free(c);

	/* no sections at all: a file of comments is valid */
	c = load_text(fx, "; nothing\n# here\n\n");
	assert_int_equal(c->ntokens, 0);
	assert_int_equal(c->ndomains, 0);
	dk_conf_free(c);
}

static void
test_syntax_forms(void **state)
{
	struct fx *fx = *state;
	struct dk_conf *c;

	/* BOM, CRLF line ends, "name: value", ';' inside a URI (no space before it) */
	c = load_text(fx, "\xEF\xBB\xBF[token primary]\r\n"
	                  "module: mod.so\r\n"
	                  "uri = pkcs11:token=dkim;serial=42 ; a comment\r\n"
	                  "pin_file = primary.pin\r\n"
	                  "[domain example.com]\r\n"
	                  "algorithms = ed25519-sha256\r\n"
	                  "primary = primary\r\n");
	assert_string_equal(c->tokens[0].uri, "pkcs11:token=dkim;serial=42");
	assert_int_equal(c->domains[0].algs, DK_CONF_ALG_ED25519_SHA256);
	dk_conf_free(c);

	/* lists go on over indented lines; comments and blank lines in between */
	c = load_text(fx, BASE "headers = from:to:\n"
	                       "    subject:date\n"
	                       "[client postfix]\n"
	                       "uid = root\n"
	                       "domains =\n"
	                       "    example.com,\n"
	                       "; a comment\n"
	                       "\n"
	                       "    *.Example.COM ; subdomains\n"
	                       "    example.org\n"
	                       "rate = 5/s\n");
	assert_string_equal(c->domains[0].headers, "from:to:subject:date");
	assert_int_equal(c->clients[0].ndomains, 3);
	assert_string_equal(c->clients[0].domains[0], "example.com");
	assert_string_equal(c->clients[0].domains[1], "*.example.com");
	assert_string_equal(c->clients[0].domains[2], "example.org");
	dk_conf_free(c);

	/* a domain name longer than inih's 49-byte section buffer */
	c = load_text(fx,
	    BASE "[domain a-rather-long-subdomain-name.of-an-even-longer-parent-domain.example]\n"
	         "algorithms = rsa-sha256\nprimary = primary\n");
	assert_non_null(dk_conf_domain(
	    c, "x.a-rather-long-subdomain-name.of-an-even-longer-parent-domain.example"));
	dk_conf_free(c);
}

/* ---- errors ---- */

static void
test_err_sections(void **state)
{
	struct fx *fx = *state;

	expect_err(
	    fx, BASE "[tokn backup]\nmodule = mod.so\n", 9, "[tokn backup]: ", "unknown section");
	expect_err(fx, "workers = 2\n" BASE, 1, "workers: ", "outside of any section");
	expect_err(fx, BASE "[daemon]\nworkers = 2\n\n[daemon]\n", 12,
	    "[daemon]: ", "appears twice (first on line 9)");
	expect_err(fx, BASE "[token primary]\n", 9,
	    "[token primary]: ", "appears twice (first on line 1)");
	expect_err(fx, BASE "[domain Example.COM]\nalgorithms = rsa-sha256\nprimary = primary\n", 9,
	    "[domain example.com]: ", "appears twice (first on line 6)");
	expect_err(fx, BASE "[client a]\nuid = 1\ndomains = *\n[client a]\n", 12,
	    "[client a]: ", "appears twice (first on line 9)");
	expect_err(fx, BASE "[token]\n", 9, "[token]: ", "a name is missing");
	expect_err(fx, BASE "[dns x]\n", 9, "[dns x]: ", "takes no name");
	expect_err(fx, BASE "[token a b]\n", 9, "[token a b]: ", "one word");
	expect_err(fx, BASE "[token pri/mary]\n", 9, "[token pri/mary]: ", "not a token name");
	expect_err(fx, BASE "[domain exa_mple.com]\n", 9,
	    "[domain exa_mple.com]: ", "only letters, digits");
	expect_err(
	    fx, BASE "[domain -bad.example]\n", 9, "[domain -bad.example]: ", "starts with '-'");
	expect_err(
	    fx, BASE "[domain example.com.]\n", 9, "[domain example.com.]: ", "trailing dot");
	expect_err(fx, BASE "[daemon\n", 9, "section header without", NULL);
	expect_err(fx, BASE "[daemon] workers = 2\n", 9, "text after the section header", NULL);
}

static void
test_err_syntax(void **state)
{
	struct fx *fx = *state;
	char text[1024], longv[300];

	expect_err(fx, BASE "[daemon]\nworkers 2\n", 10, "neither \"key = value\"", NULL);
	/* an indented line continues the previous key: only lists may do that */
	expect_err(fx, BASE "[daemon]\nsocket = /run/x.sock\n    workers = 2\n", 11,
	    "[daemon] socket: ", "from line 10");
	expect_err(fx, BASE "[client c]\n  domains = example.com\n  uid = 0\n", 11,
	    "[client c] domains: ", "indented line");
	expect_err(fx, BASE "[daemon]\n= 2\n", 10, "a value without a key name", NULL);
	expect_err(fx, BASE "[daemon]\nworkers = 2 # two\n", 10, "[daemon] workers: ", "use ';'");
	expect_err(fx, BASE "[daemon]\nworkers = 2\nworkers = 3\n", 11,
	    "[daemon] workers: ", "set twice (first on line 10)");
	expect_err(fx, BASE "[daemon]\nworker = 2\n", 10,
	    "[daemon] worker: ", "unknown key; the keys of [daemon] are socket, socket_mode");
	expect_err(fx, BASE "[daemon]\nsocket =\n", 10, "[daemon] socket: ", "no value");
	expect_err(fx, BASE "[daemon]\nqueue = 5\x01\n", 10, "control character 0x01", NULL);

	/* inih cuts lines at 200 bytes; longer ones are refused, not split */
	memset(longv, 'a', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	snprintf(text, sizeof(text), BASE "[daemon]\n\n\naudit_log = /%s\n", longv);
	expect_err(fx, text, 12, "line longer than 197 characters", NULL);
	/* a long comment is fine */
	snprintf(text, sizeof(text), BASE "; %s\n", longv);
	dk_conf_free(load_text(fx, text));
}

/* env = VAR=value for the token's module, repeatable; never a PIN; one value per process. */
static void
test_token_env(void **state)
{
	struct fx *fx = *state;
	struct dk_conf *c;
	const char *tok2 = "[token two]\nmodule = mod.so\nuri = pkcs11:token=two\n"
	                   "pin_file = backup.pin\n";
	char text[1024];

	c = load_text(fx, "[token primary]\nmodule = mod.so\nuri = pkcs11:token=p\n"
	                  "pin_file = primary.pin\n"
	                  "env = P11_KIT_SERVER_ADDRESS=unix:path=/run/p11-kit/a.sock\n"
	                  "env = SOFTHSM2_CONF=/etc/softhsm/softhsm2.conf\n");
	assert_int_equal(c->tokens[0].nenv, 2);
	assert_string_equal(
	    c->tokens[0].env[0], "P11_KIT_SERVER_ADDRESS=unix:path=/run/p11-kit/a.sock");
	assert_int_equal(dk_conf_token_setenv(&c->tokens[0]), 0);
	assert_string_equal(getenv("P11_KIT_SERVER_ADDRESS"), "unix:path=/run/p11-kit/a.sock");
	unsetenv("P11_KIT_SERVER_ADDRESS");
	unsetenv("SOFTHSM2_CONF");
	dk_conf_free(c);

	expect_err(
	    fx, BASE "[token b]\nenv = SOFTHSM_PIN=1234\n", 10, "[token b] env: ", "never a PIN");
	expect_err(
	    fx, BASE "[token b]\nenv = P11_KIT_PIN=1234\n", 10, "[token b] env: ", "never a PIN");
	expect_err(fx, BASE "[token b]\nenv = LD_PRELOAD=/tmp/x.so\n", 10,
	    "[token b] env: ", "not a module variable");
	expect_err(fx, BASE "[token b]\nenv = P11_KIT_SERVER_ADDRESS\n", 10,
	    "[token b] env: ", "not VAR=value");
	expect_err(fx,
	    BASE "[token b]\nenv = P11_KIT_SERVER_ADDRESS=a\nenv = P11_KIT_SERVER_ADDRESS=b\n", 11,
	    "[token b] env: ", "set twice");
	/* Two servers through one client module: refused, the environment is one per process. */
	expect_err(fx,
	    "[token one]\nmodule = mod.so\nuri = pkcs11:token=one\npin_file = primary.pin\n"
	    "env = P11_KIT_SERVER_ADDRESS=unix:path=/a\n"
	    "[token two]\nmodule = mod.so\nuri = pkcs11:token=two\npin_file = backup.pin\n"
	    "env = P11_KIT_SERVER_ADDRESS=unix:path=/b\n",
	    1, "[token one] env: ", "one per process");
	/* The same module with and without env: refused too. */
	snprintf(
	    text, sizeof(text), "%s%senv = P11_KIT_SERVER_ADDRESS=unix:path=/a\n", BASE "\n", tok2);
	expect_err(fx, text, 10, "[token two] env: ", "same module");
}

static void
test_err_values(void **state)
{
	struct fx *fx = *state;

	expect_err(fx, BASE "[daemon]\nworkers = 0\n", 10, "[daemon] workers: ", "from 1 to 64");
	expect_err(fx, BASE "[daemon]\nworkers = 65\n", 10, "[daemon] workers: ", "1 to 64");
	expect_err(fx, BASE "[daemon]\nqueue = two\n", 10, "[daemon] queue: ", "whole number");
	expect_err(
	    fx, BASE "[daemon]\nmax_connections = 10k\n", 10, "[daemon] max_connections: ", NULL);
	expect_err(fx, BASE "[daemon]\nsocket_mode = 660\n", 10, "[daemon] socket_mode: ", "octal");
	expect_err(fx, BASE "[daemon]\nsocket_mode = 0690\n", 10, "[daemon] socket_mode: ", NULL);
	expect_err(fx, BASE "[daemon]\nsocket_mode = 01777\n", 10, "[daemon] socket_mode: ", NULL);
	expect_err(fx, BASE "[daemon]\naudit_fail = maybe\n", 10,
	    "[daemon] audit_fail: ", "closed or open");
	expect_err(fx, BASE "[daemon]\nhealth_interval = 5w\n", 10,
	    "[daemon] health_interval: ", "not a duration");
	expect_err(fx, BASE "[daemon]\nsocket_group = no-such-group-dk\n", 10,
	    "[daemon] socket_group: ", "no group named");
	expect_err(
	    fx, BASE "[daemon]\nuser = no-such-user-dk\n", 10, "[daemon] user: ", "no user named");
	expect_err(fx, BASE "rotate_every = 90x\n", 9,
	    "[domain example.com] rotate_every: ", "not a duration");
	expect_err(fx, BASE "rotate_every = 0\n", 9,
	    "[domain example.com] rotate_every: ", "out of range");
	expect_err(fx, BASE "dns_publish = bind\n", 9,
	    "[domain example.com] dns_publish: ", "rfc2136, command or manual");
	expect_err(fx, BASE "rsa_bits = 1024\n", 9, "[domain example.com] rsa_bits: ", NULL);
	expect_err(fx, BASE "canonicalization = loose\n", 9,
	    "[domain example.com] canonicalization: ", NULL);
	expect_err(fx, BASE "selector_template = s{year}\n", 9,
	    "[domain example.com] selector_template: ", NULL);
	expect_err(fx, BASE "selector_template = s_{alg}\n", 9,
	    "[domain example.com] selector_template: ", NULL);
	expect_err(
	    fx, BASE "headers = to:subject\n", 9, "[domain example.com] headers: ", "RFC 6376");
	expect_err(fx, BASE "headers = from:bad name\n", 9, "[domain example.com] headers: ", NULL);
	expect_err(
	    fx, BASE "uri = pkcs11:token=x\n", 9, "[domain example.com] uri: ", "unknown key");
	expect_err(fx, "[token primary]\nmodule = mod.so\nuri = token=x\npin_file = primary.pin\n",
	    3, "[token primary] uri: ", "pkcs11:");
	expect_err(fx,
	    "[token primary]\nmodule = nosuch.so\nuri = pkcs11:token=x\npin_file = primary.pin\n",
	    2, "[token primary] module: ", "No such file");
	expect_err(fx, BASE "[dns]\nserver = 1.2.3.4:99999\n", 10, "[dns] server: ", "HOST:PORT");
	expect_err(fx, BASE "[dns]\nserver = bad_host\n", 10, "[dns] server: ", NULL);
	expect_err(fx, BASE "[dns]\nnotify_command = mod.so\n", 10,
	    "[dns] notify_command: ", "not executable");
	expect_err(fx, BASE "[milter]\nsign = none\n", 10, "[milter] sign: ", NULL);
	expect_err(fx, BASE "[milter]\non_error = reject\n", 10,
	    "[milter] on_error: ", "tempfail nor accept");
	expect_err(
	    fx, BASE "[milter]\nsocket = inet:99999@localhost\n", 10, "[milter] socket: ", NULL);
	expect_err(fx, BASE "[milter]\ninternal_hosts = 127.0.0.1/8\n", 10,
	    "[milter] internal_hosts: ", "write 127.0.0.0/8");
	expect_err(fx, BASE "[milter]\ninternal_hosts = 10.0.0.0/8,\n  300.0.0.0/8\n", 11,
	    "[milter] internal_hosts: ", NULL);
	expect_err(
	    fx, BASE "[milter]\ninternal_hosts = ::1/129\n", 10, "[milter] internal_hosts: ", NULL);
	expect_err(fx, BASE "[milter]\ninternal_hosts = 10.0.0.0/8,,::1\n", 10,
	    "[milter] internal_hosts: ", "empty entry");
	expect_err(fx, BASE "[milter]\ninternal_hosts =\n[dns]\n", 10,
	    "[milter] internal_hosts: ", "empty list");
	expect_err(fx,
	    BASE "[daemon]\nsocket = /run/"
	         "a-socket-path-that-is-far-too-long-for-sun_path-because-it-goes-on/and-on/"
	         "and-on-for-a-while-longer-than-108-bytes/sign.sock\n",
	    10, "[daemon] socket: ", "Unix socket path");
}

static void
test_err_algorithms(void **state)
{
	struct fx *fx = *state;
	const char *head = "[token primary]\nmodule = mod.so\nuri = pkcs11:token=x\n"
	                   "pin_file = primary.pin\n[domain example.com]\nprimary = primary\n";
	char text[1024];

	snprintf(text, sizeof(text), "%salgorithms = rsa-sha256, rsa-sha1\n", head);
	expect_err(fx, text, 7, "[domain example.com] algorithms: ", "RFC 8301");
	snprintf(text, sizeof(text), "%salgorithms = ed448-sha256\n", head);
	expect_err(fx, text, 7, "[domain example.com] algorithms: ", "unknown algorithm");
	snprintf(text, sizeof(text), "%salgorithms = rsa-sha256, rsa-sha256\n", head);
	expect_err(fx, text, 7, "[domain example.com] algorithms: ", "twice");
	snprintf(text, sizeof(text), "%salgorithms = , rsa-sha256\n", head);
	expect_err(fx, text, 7, "[domain example.com] algorithms: ", "empty entry");
	/* over two lines */
	snprintf(text, sizeof(text), "%salgorithms = rsa-sha256,\n  ed25519-sha256\n", head);
	dk_conf_free(load_text(fx, text));
}

static void
test_err_required(void **state)
{
	struct fx *fx = *state;

	expect_err(fx, "[token primary]\nmodule = mod.so\nuri = pkcs11:token=x\n\n[daemon]\n", 1,
	    "[token primary] pin_file: ", "required key is missing");
	expect_err(fx, "[token primary]\nmodule = mod.so\npin_file = primary.pin\n", 1,
	    "[token primary] uri: ", "required");
	expect_err(fx, "[token primary]\nuri = pkcs11:token=x\npin_file = primary.pin\n", 1,
	    "[token primary] module: ", "required");
	expect_err(fx, BASE "[domain example.org]\nalgorithms = rsa-sha256\n", 9,
	    "[domain example.org] primary: ", "required");
	expect_err(fx, BASE "[domain example.org]\nprimary = primary\n", 9,
	    "[domain example.org] algorithms: ", "required");
	/* references are checked once the whole file is read, at the key's line */
	expect_err(fx, BASE "backup = spare\n", 9,
	    "[domain example.com] backup: ", "no [token spare] section");
	expect_err(fx,
	    "[domain example.com]\nalgorithms = rsa-sha256\nprimary = main\n"
	    "[token primary]\nmodule = mod.so\nuri = pkcs11:token=x\npin_file = primary.pin\n",
	    3, "[domain example.com] primary: ", "no [token main] section");
	expect_err(
	    fx, BASE "dns_publish = rfc2136\n", 9, "[domain example.com] dns_publish: ", "[dns]");
	expect_err(fx, BASE "dns_publish = command\n", 9,
	    "[domain example.com] dns_publish: ", "publish_command");
	expect_err(fx, BASE "[client mta]\ndomains = example.com\n", 9,
	    "[client mta] uid: ", "uid, gid or both");
	expect_err(fx, BASE "[client mta]\nuid = 0\n", 9, "[client mta] domains: ", "required");
}

static void
test_err_client(void **state)
{
	struct fx *fx = *state;

	expect_err(fx, BASE "[client mta]\nuid = no-such-user-dk\n", 10,
	    "[client mta] uid: ", "no user named \"no-such-user-dk\"");
	expect_err(fx, BASE "[client mta]\ngid = no-such-group-dk\n", 10,
	    "[client mta] gid: ", "no group named");
	expect_err(fx, BASE "[client mta]\nuid = 4294967295\n", 10, "[client mta] uid: ", NULL);
	expect_err(fx, BASE "[client mta]\nuid = 0\ndomains = ex*ample.com\n", 11,
	    "[client mta] domains: ", "*.example.com");
	expect_err(
	    fx, BASE "[client mta]\nuid = 0\ndomains = *.\n", 11, "[client mta] domains: ", NULL);
	expect_err(fx, BASE "[client mta]\nuid = 0\ndomains = a..example.com\n", 11,
	    "[client mta] domains: ", "empty label");
	expect_err(fx, BASE "[client mta]\nuid = 0\ndomains = *\nrate = 500/d\n", 12,
	    "[client mta] rate: ", "COUNT/s");
	expect_err(fx, BASE "[client mta]\nuid = 0\ndomains = *\nrate = 500\n", 12,
	    "[client mta] rate: ", NULL);
	expect_err(fx, BASE "[client mta]\nuid = 0\ndomains = *\nrate = 0/s\n", 12,
	    "[client mta] rate: ", NULL);
}

/* ---- the config file itself ---- */

/* Loading fails with DK_ERR_CONFIG and a detail holding needle (no line: the whole file). */
static void
expect_file_err(struct fx *fx, const char *needle)
{
	struct dk_conf *c = NULL;
	int r;

	r = dk_conf_load(fx->conf, &c);
	assert_null(c);
	if (r != DK_ERR_CONFIG)
		fail_msg("want DK_ERR_CONFIG, got %d (%s)", r, dk_err_detail());
	if (strstr(dk_err_detail(), needle) == NULL)
		fail_msg("detail \"%s\" does not contain \"%s\"", dk_err_detail(), needle);
}

static void
test_conf_file_owner_and_mode(void **state)
{
	struct fx *fx = *state;
	char want[PATH_MAX + 256];

	dk_conf_free(load_text(fx, BASE)); /* 0644, ours: fine */
	assert_int_equal(chmod(fx->conf, 0666), 0);
	snprintf(want, sizeof(want),
	    "config file %s is writable by others (mode 0666): whoever can write it chooses the "
	    "PKCS#11 module dkimkeep loads; run \"chmod go-w %s\"",
	    fx->conf, fx->conf);
	expect_file_err(fx, want);
	assert_int_equal(chmod(fx->conf, 0664), 0);
	expect_file_err(fx, "is writable by its group (mode 0664)");
	assert_int_equal(chmod(fx->conf, 0640), 0);
	if (geteuid() == 0) {
		/* another user's file (root may hand it over; others cannot) */
		assert_int_equal(chown(fx->conf, 65534, 65534), 0);
		expect_file_err(
		    fx, "belongs to uid 65534, neither root nor this process's user (0)");
		assert_int_equal(chown(fx->conf, 0, 0), 0);
	}
	assert_int_equal(chmod(fx->conf, 0400), 0);
	{
		struct dk_conf *c = NULL;

		assert_int_equal(dk_conf_load(fx->conf, &c), 0);
		dk_conf_free(c);
	}
}

/* ---- PIN files ---- */

static void
test_pin_files(void **state)
{
	struct fx *fx = *state;
	char path[256], want[1024], link[256];

	snprintf(path, sizeof(path), "%s/primary.pin", fx->dir);
	assert_int_equal(chmod(path, 0644), 0);
	snprintf(want, sizeof(want), "%s is readable by others (mode 0644); run \"chmod 0400 %s\"",
	    path, path);
	expect_err(fx, BASE, 4, "[token primary] pin_file: ", want);
	/* the whole detail, as the operator sees it */
	snprintf(want, sizeof(want),
	    "%s:4: [token primary] pin_file: %s is readable by others (mode 0644); "
	    "run \"chmod 0400 %s\"",
	    fx->conf, path, path);
	assert_string_equal(dk_err_detail(), want);

	assert_int_equal(chmod(path, 0640), 0);
	expect_err(fx, BASE, 4, "[token primary] pin_file: ", "readable by its group (mode 0640)");
	assert_int_equal(chmod(path, 0602), 0);
	expect_err(fx, BASE, 4, "[token primary] pin_file: ", "mode 0602");
	assert_int_equal(chmod(path, 0400), 0);
	dk_conf_free(load_text(fx, BASE));

	expect_err(fx,
	    "[token primary]\nmodule = mod.so\nuri = pkcs11:token=x\npin_file = missing.pin\n", 4,
	    "[token primary] pin_file: ", "missing.pin does not exist");
	expect_err(fx, "[token primary]\nmodule = mod.so\nuri = pkcs11:token=x\npin_file = .\n", 4,
	    "[token primary] pin_file: ", "not a regular file");
	/* dk_secret opens PIN files with O_NOFOLLOW */
	snprintf(link, sizeof(link), "%s/link.pin", fx->dir);
	assert_int_equal(symlink(path, link), 0);
	expect_err(fx,
	    "[token primary]\nmodule = mod.so\nuri = pkcs11:token=x\npin_file = link.pin\n", 4,
	    "[token primary] pin_file: ", "symbolic link");
	/* the TSIG key is a secret too */
	snprintf(path, sizeof(path), "%s/tsig.key", fx->dir);
	assert_int_equal(chmod(path, 0644), 0);
	expect_err(fx, BASE "[dns]\ntsig_key_file = tsig.key\n", 10,
	    "[dns] tsig_key_file: ", "readable by others");
}

/* DK_CONF_NO_SECRET_CHECK (the milter): secret files are named, not examined. */
static void
test_no_secret_check(void **state)
{
	struct fx *fx = *state;
	struct dk_conf *c = NULL;
	char path[256], want[512];

	snprintf(path, sizeof(path), "%s/primary.pin", fx->dir);
	assert_int_equal(chmod(path, 0644), 0);
	write_file(fx->dir, "dkimkeep.conf",
	    BASE "[dns]\ntsig_key_file = missing.key\n[milter]\nsign = all\n", 0644);
	assert_int_equal(dk_conf_load(fx->conf, &c), DK_ERR_CONFIG);
	assert_null(c);
	assert_int_equal(dk_conf_load_flags(fx->conf, DK_CONF_NO_SECRET_CHECK, &c), 0);
	assert_non_null(c);
	assert_string_equal(c->tokens[0].pin_file, path);
	snprintf(want, sizeof(want), "%s/missing.key", fx->dir);
	assert_string_equal(c->dns.tsig_key_file, want);
	assert_int_equal(c->milter.sign, DK_MILTER_SIGN_ALL);
	dk_conf_free(c);
	/* Everything else is checked as ever. */
	write_file(fx->dir, "dkimkeep.conf", BASE "[milter]\nsign = some\n", 0644);
	c = NULL;
	assert_int_equal(dk_conf_load_flags(fx->conf, DK_CONF_NO_SECRET_CHECK, &c), DK_ERR_CONFIG);
	assert_null(c);
}

static void
test_credentials_directory(void **state)
{
	struct fx *fx = *state;
	char creds[256], path[PATH_MAX];
	struct dk_conf *c;
	const char *text = "[token primary]\nmodule = mod.so\nuri = pkcs11:token=x\n"
	                   "pin_file = cred.pin\n";

	snprintf(creds, sizeof(creds), "%s/creds", fx->dir);
	assert_int_equal(mkdir(creds, 0700), 0);
	write_file(creds, "cred.pin", "9999\n", 0400);
	/* without $CREDENTIALS_DIRECTORY the file is looked for beside the config */
	expect_err(fx, text, 4, "[token primary] pin_file: ", "cred.pin does not exist");
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", creds, 1), 0);
	c = load_text(fx, text);
	snprintf(path, sizeof(path), "%s/cred.pin", creds);
	assert_string_equal(c->tokens[0].pin_file, path);
	dk_conf_free(c);
	/* a name not in the credentials directory still falls back to the config's */
	c = load_text(fx, BASE);
	snprintf(path, sizeof(path), "%s/primary.pin", fx->dir);
	assert_string_equal(c->tokens[0].pin_file, path);
	dk_conf_free(c);
	/* an absolute path is never looked up there */
	expect_err(fx,
	    "[token primary]\nmodule = mod.so\nuri = pkcs11:token=x\npin_file = /cred.pin\n", 4,
	    "[token primary] pin_file: ", "/cred.pin does not exist");
}

/* ---- paths ---- */

static void
test_relative_paths(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], cwd[PATH_MAX], sub[256];
	struct dk_conf *c = NULL;

	snprintf(sub, sizeof(sub), "%s/keys", fx->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file(sub, "p.pin", "1\n", 0600);
	c = load_text(fx, "[daemon]\nsocket = run/sign.sock\naudit_log = log/audit.jsonl\n"
	                  "[token primary]\nmodule = ./mod.so\nuri = pkcs11:token=x\n"
	                  "pin_file = keys/p.pin\n"
	                  "[dns]\ntsig_key_file = tsig.key\npublish_command = publish.sh\n"
	                  "notify_command = notify.sh\n");
	snprintf(path, sizeof(path), "%s/run/sign.sock", fx->dir);
	assert_string_equal(c->daemon.socket, path);
	snprintf(path, sizeof(path), "%s/log/audit.jsonl", fx->dir);
	assert_string_equal(c->daemon.audit_log, path);
	snprintf(path, sizeof(path), "%s/./mod.so", fx->dir);
	assert_string_equal(c->tokens[0].module, path);
	snprintf(path, sizeof(path), "%s/keys/p.pin", fx->dir);
	assert_string_equal(c->tokens[0].pin_file, path);
	snprintf(path, sizeof(path), "%s/tsig.key", fx->dir);
	assert_string_equal(c->dns.tsig_key_file, path);
	snprintf(path, sizeof(path), "%s/publish.sh", fx->dir);
	assert_string_equal(c->dns.publish_command, path);
	snprintf(path, sizeof(path), "%s/notify.sh", fx->dir);
	assert_string_equal(c->dns.notify_command, path);
	assert_string_equal(c->milter.client_socket, c->daemon.socket);
	dk_conf_free(c);

	/* a relative config path: its directory is still made absolute */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(sub), 0);
	c = NULL;
	assert_int_equal(dk_conf_load("../dkimkeep.conf", &c), 0);
	assert_non_null(c);
	assert_string_equal(c->path, "../dkimkeep.conf");
	assert_non_null(realpath(fx->dir, path));
	assert_string_equal(c->dir, path);
	dk_conf_free(c);
	c = NULL;
	assert_int_equal(chdir(fx->dir), 0);
	assert_int_equal(dk_conf_load("dkimkeep.conf", &c), 0);
	assert_non_null(realpath(".", path));
	assert_string_equal(c->dir, path);
	dk_conf_free(c);
	assert_int_equal(chdir(cwd), 0);
}

static void
test_io_errors(void **state)
{
	struct fx *fx = *state;
	struct dk_conf *c = NULL;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/absent.conf", fx->dir);
	assert_int_equal(dk_conf_load(path, &c), DK_ERR_IO);
	assert_null(c);
	assert_non_null(strstr(dk_err_detail(), path));
	assert_non_null(strstr(dk_err_detail(), "No such file"));
	assert_int_equal(dk_conf_load(fx->dir, &c), DK_ERR_IO);
	assert_non_null(strstr(dk_err_detail(), "not a regular file"));
	assert_null(c);
	dk_conf_free(NULL);
}

static void
test_default_path(void **state)
{
	(void)state;
	unsetenv("DKIMKEEP_CONF");
	assert_string_equal(dk_conf_default_path(), DK_CONF_DEFAULT_PATH);
	setenv("DKIMKEEP_CONF", "/srv/dk.conf", 1);
	assert_string_equal(dk_conf_default_path(), "/srv/dk.conf");
	setenv("DKIMKEEP_CONF", "", 1);
	assert_string_equal(dk_conf_default_path(), DK_CONF_DEFAULT_PATH);
	unsetenv("DKIMKEEP_CONF");
}

/* ---- lookups ---- */

static void
test_domain_lookup(void **state)
{
	struct fx *fx = *state;
	const struct dk_conf_domain *d;
	struct dk_conf *c;

	c = load_text(fx,
	    BASE "[domain sub.example.org]\nalgorithms = rsa-sha256\n"
	         "primary = primary\n"
	         "[domain a.example.com]\nalgorithms = ed25519-sha256\n"
	         "primary = primary\n"
	         "[domain EXAMPLE.net]\nalgorithms = rsa-sha256\nprimary = primary\n");
	assert_int_equal(c->ndomains, 4);
	d = dk_conf_domain(c, "example.com");
	assert_non_null(d);
	assert_string_equal(d->name, "example.com");
	d = dk_conf_domain(c, "mail.example.com");
	assert_non_null(d);
	assert_string_equal(d->name, "example.com");
	d = dk_conf_domain(c, "x.y.example.com");
	assert_non_null(d);
	assert_string_equal(d->name, "example.com");
	d = dk_conf_domain(c, "A.Example.COM");
	assert_non_null(d);
	assert_string_equal(d->name, "a.example.com");
	d = dk_conf_domain(c, "b.a.example.com");
	assert_non_null(d);
	assert_string_equal(d->name, "a.example.com");
	d = dk_conf_domain(c, "x.sub.example.org");
	assert_non_null(d);
	assert_string_equal(d->name, "sub.example.org");
	d = dk_conf_domain(c, "example.net");
	assert_non_null(d);
	assert_string_equal(d->name, "example.net");
	assert_null(dk_conf_domain(c, "example.org"));
	assert_null(dk_conf_domain(c, "notexample.com"));
	assert_null(dk_conf_domain(c, "com"));
	assert_null(dk_conf_domain(c, ""));
	dk_conf_free(c);
}

static void
test_client_matching(void **state)
{
	struct fx *fx = *state;
	const struct dk_conf_client *cl;
	struct dk_conf *c;

	c = load_text(fx, BASE "[client a]\nuid = 1000\ndomains = example.com\n"
	                       "[client b]\nuid = 1001\ngid = 50\ndomains = *.example.org\n"
	                       "[client c]\ngid = 60\ndomains = *\n"
	                       "[client d]\nuid = root\ngid = root\ndomains = example.net\n"
	                       "[client a2]\nuid = 1000\ndomains = *\n");
	cl = dk_conf_client_for(c, 1000, 5);
	assert_non_null(cl);
	assert_string_equal(cl->name, "a"); /* the first that matches */
	cl = dk_conf_client_for(c, 1001, 50);
	assert_non_null(cl);
	assert_string_equal(cl->name, "b");
	assert_null(dk_conf_client_for(c, 1001, 51));
	cl = dk_conf_client_for(c, 1001, 60); /* b needs gid 50; c takes anyone in gid 60 */
	assert_non_null(cl);
	assert_string_equal(cl->name, "c");
	cl = dk_conf_client_for(c, 2000, 60);
	assert_non_null(cl);
	assert_string_equal(cl->name, "c");
	cl = dk_conf_client_for(c, 0, 0);
	assert_non_null(cl);
	assert_string_equal(cl->name, "d");
	assert_int_equal(cl->uid, 0);
	assert_int_equal(cl->gid, 0);
	assert_null(dk_conf_client_for(c, 0, 1));
	assert_null(dk_conf_client_for(c, 3000, 3000));

	cl = dk_conf_client_for(c, 1000, 1);
	assert_true(dk_conf_client_allows(cl, "example.com"));
	assert_true(dk_conf_client_allows(cl, "EXAMPLE.Com"));
	assert_false(dk_conf_client_allows(cl, "mail.example.com"));
	assert_false(dk_conf_client_allows(cl, "example.org"));
	assert_false(dk_conf_client_allows(cl, ""));
	cl = dk_conf_client_for(c, 1001, 50);
	assert_true(dk_conf_client_allows(cl, "a.example.org"));
	assert_true(dk_conf_client_allows(cl, "a.b.Example.ORG"));
	assert_false(dk_conf_client_allows(cl, "example.org"));
	assert_false(dk_conf_client_allows(cl, "badexample.org"));
	assert_false(dk_conf_client_allows(cl, ".example.org"));
	cl = dk_conf_client_for(c, 7, 60);
	assert_true(dk_conf_client_allows(cl, "anything.example"));
	dk_conf_free(c);
}

static void
test_uid_forms(void **state)
{
	struct fx *fx = *state;
	struct dk_conf *c;

	c = load_text(fx, "[client byname]\nuid = root\ndomains = *\n"
	                  "[client bynumber]\nuid = 1234\ngid = 4321\ndomains = *\n"
	                  "[client max]\nuid = 4294967294\ndomains = *\n");
	assert_int_equal(c->clients[0].has_uid, 1);
	assert_int_equal(c->clients[0].uid, 0);
	assert_int_equal(c->clients[0].has_gid, 0);
	assert_int_equal(c->clients[1].uid, 1234);
	assert_int_equal(c->clients[1].has_gid, 1);
	assert_int_equal(c->clients[1].gid, 4321);
	assert_int_equal(c->clients[2].uid, 4294967294u);
	dk_conf_free(c);
}

static void
test_many_domains(void **state)
{
	struct fx *fx = *state;
	struct dk_conf *c;
	size_t cap = (DK_CONF_MAX_DOMAINS + 2) * 80, len;
	char *text = malloc(cap);
	int i;

	assert_non_null(text);
	len = (size_t)snprintf(text, cap, "%s", BASE);
	for (i = 0; i < DK_CONF_MAX_DOMAINS - 1; i++)
		len += (size_t)snprintf(text + len, cap - len,
		    "[domain d%d.example]\nalgorithms = rsa-sha256\nprimary = primary\n", i);
	c = load_text(fx, text);
	assert_int_equal(c->ndomains, DK_CONF_MAX_DOMAINS);
	assert_non_null(dk_conf_domain(c, "x.d9998.example"));
	assert_non_null(dk_conf_domain(c, "d0.example"));
	assert_null(dk_conf_domain(c, "d10000.example"));
	dk_conf_free(c);
	/* one more is refused, at its line */
	len += (size_t)snprintf(text + len, cap - len, "[domain one-more.example]\n");
	expect_err(fx, text, 8 + 3 * (DK_CONF_MAX_DOMAINS - 1) + 1,
	    "[domain one-more.example]: ", "more than 10000");
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_interface_example, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_syntax_forms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_err_sections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_err_syntax, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_err_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_err_algorithms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_err_required, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_err_client, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pin_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_secret_check, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credentials_directory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_relative_paths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_io_errors, setup, teardown),
	    cmocka_unit_test(test_default_path),
	    cmocka_unit_test_setup_teardown(test_domain_lookup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_matching, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uid_forms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_domains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_env, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conf_file_owner_and_mode, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
