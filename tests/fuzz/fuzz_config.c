/*
 * fuzz_config.c - the INI configuration (dk_conf_load) and the lookups
 * done with what it loaded.  The input follows a fixed prefix of two valid
 * [token] sections whose module and 0600 PIN file this target makes once
 * in a temp dir, so that [domain] sections can name real tokens.  Each
 * input is written to a file there and loaded from it, as dkimkeepd does.
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common/dk_config.h"
#include "common/dk_err.h"
#include "tests/fuzz/fuzz_common.h"

#define INPUT_MAX (256 * 1024)

static char dir[64], conf_path[128], prefix[1024];
static size_t prefix_len;

static void
write_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || write(fd, p, n) != (ssize_t)n || fchmod(fd, mode) != 0 || close(fd) != 0) {
		fprintf(stderr, "fuzz_config: cannot write %s: %s\n", path, strerror(errno));
		abort();
	}
}

/* libFuzzer has no teardown: the temp dir goes at exit. */
static void
cleanup(void)
{
	static const char *const names[] = {"module.so", "primary.pin", "dkimkeep.conf"};
	char path[128];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[128];
	int n;

	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/dkimkeep-fuzz-config-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	atexit(cleanup);
	snprintf(path, sizeof(path), "%s/module.so", dir);
	write_file(path, "", 0, 0644);
	snprintf(path, sizeof(path), "%s/primary.pin", dir);
	write_file(path, "1234\n", 5, 0600);
	snprintf(conf_path, sizeof(conf_path), "%s/dkimkeep.conf", dir);
	n = snprintf(prefix, sizeof(prefix),
	    "[token primary]\nmodule = %s/module.so\nuri = pkcs11:token=dk-primary\n"
	    "pin_file = primary.pin\n\n"
	    "[token backup]\nmodule = module.so\nuri = pkcs11:token=dk-backup\n"
	    "pin_file = %s/primary.pin\n\n",
	    dir, dir);
	prefix_len = (size_t)n;
	return 0;
}

static void
use_conf(const struct dk_conf *c)
{
	static const char *const probes[] = {
	    "example.com", "a.b.example.com", "EXAMPLE.org", "", "com", "x"};
	size_t i, j;

	FUZZ_CHECK(c->ntokens >= 2 && dk_conf_token(c, "primary") != NULL);
	for (i = 0; i < c->ndomains; i++) {
		FUZZ_CHECK(dk_conf_domain(c, c->domains[i].name) == &c->domains[i]);
		FUZZ_CHECK(c->domains[i].headers != NULL && c->domains[i].oversign != NULL);
		FUZZ_CHECK(dk_conf_token(c, c->domains[i].primary) != NULL);
		if (i > 0)
			FUZZ_CHECK(strcmp(c->domains[i - 1].name, c->domains[i].name) < 0);
	}
	for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		(void)dk_conf_domain(c, probes[i]);
	for (i = 0; i < c->nclients; i++) {
		const struct dk_conf_client *cl = &c->clients[i];

		FUZZ_CHECK(cl->has_uid || cl->has_gid);
		FUZZ_CHECK(dk_conf_client_for(c, cl->uid, cl->gid) != NULL);
		for (j = 0; j < sizeof(probes) / sizeof(probes[0]); j++)
			(void)dk_conf_client_allows(cl, probes[j]);
		for (j = 0; j < cl->ndomains && j < 8; j++)
			(void)dk_conf_client_allows(cl, cl->domains[j]);
	}
	FUZZ_CHECK(c->daemon.socket != NULL && c->milter.socket != NULL);
	FUZZ_CHECK(c->milter.ninternal_hosts > 0);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct dk_conf *c = NULL;
	char *text;
	int r;

	if (size > INPUT_MAX)
		return 0;
	if ((text = malloc(prefix_len + size)) == NULL)
		abort();
	memcpy(text, prefix, prefix_len);
	memcpy(text + prefix_len, data, size);
	write_file(conf_path, text, prefix_len + size, 0644);
	free(text);
	r = dk_conf_load(conf_path, &c);
	if (r == 0) {
		FUZZ_CHECK(c != NULL);
		use_conf(c);
	} else {
		FUZZ_CHECK(c == NULL);
		FUZZ_CHECK(r == DK_ERR_CONFIG || r == DK_ERR_NOMEM || r == DK_ERR_IO);
		/* every refusal names the file */
		FUZZ_CHECK(strstr(dk_err_detail(), conf_path) != NULL);
	}
	dk_conf_free(c);
	return 0;
}
