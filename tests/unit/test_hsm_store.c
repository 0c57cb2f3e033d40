/*
 * test_hsm_store.c - two processes changing one SoftHSM token (a real
 * token in a temp dir): each one's listing holds what the other made or
 * removed (hsm/hsm_store.c).
 *
 * SoftHSM lists its token directory again only when the token's
 * generation counter moved since its last look, and its own create sets the
 * counter without a look.  Without hsm_store.c, B below (which listed, then
 * saw A create an object, then created its own) lists only its own object,
 * and keeps doing so until a third change: the rotation lease let two
 * "key step" drive at once that way.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/dk_err.h"
#include "hsm/hsm.h"

#define LABEL "store-test"

static char dir[64], pin[128];

/* One process's token: module, token, login, session. */
struct side {
	struct hsm_module *m;
	struct hsm_token *t;
	struct hsm_session *s;
};

static int
side_open(struct side *x)
{
	memset(x, 0, sizeof(*x));
	if (hsm_module_open(DK_SOFTHSM_MODULE, &x->m) != 0 ||
	    hsm_token_open(x->m, "pkcs11:token=store", &x->t) != 0 ||
	    hsm_token_login(x->t, pin) != 0 || hsm_session_open(x->t, &x->s) != 0) {
		fprintf(stderr, "test_hsm_store: %s\n", dk_err_detail());
		return -1;
	}
	return 0;
}

static void
side_close(struct side *x)
{
	hsm_session_close(x->s);
	hsm_token_close(x->t);
	hsm_module_close(x->m);
}

/* How many lease objects labelled LABEL s lists; -1 on an error. */
static int
count(struct side *x)
{
	struct hsm_lease *v = NULL;
	size_t n = 0;

	if (hsm_lease_list(x->s, LABEL, &v, &n) != 0)
		return -1;
	free(v);
	return (int)n;
}

static void
say(int fd)
{
	if (write(fd, "x", 1) != 1)
		_exit(90);
}

/* 1 when the other side spoke, 0 when it is gone (every other copy of its pipe end is closed). */
static int
heard(int fd)
{
	char c;

	return read(fd, &c, 1) == 1;
}

static void
hear(int fd)
{
	if (!heard(fd))
		_exit(91);
}

/*
 * A: waits for "go", then opens the token (not while B opens it: SoftHSM
 * processes logging in to one token at the same moment sometimes fail
 * with CKR_GENERAL_ERROR), creates an object, says so; at "next" removes
 * it and says so; at "end" exits.
 */
static void
side_a(int in, int out)
{
	struct side x;
	unsigned long obj;

	hear(in);
	if (side_open(&x) != 0)
		_exit(92);
	if (hsm_lease_create(x.s, LABEL, "v=1\nid=a\n", &obj) != 0)
		_exit(93);
	say(out);
	hear(in);
	if (hsm_lease_destroy(x.s, obj) != 0)
		_exit(94);
	say(out);
	hear(in);
	side_close(&x);
	_exit(0);
}

/*
 * B: lists (0), lets A create, creates its own and lists: 2 objects.  Lets
 * A remove its own, creates another and lists: its own 2 only.  Exits with
 * 10 * the first count + the second (22 when both are right).
 */
static void
side_b(int in, int out)
{
	struct side x;
	unsigned long obj;
	int first, second;

	if (side_open(&x) != 0 || count(&x) != 0)
		_exit(95);
	say(out);
	hear(in);
	if (hsm_lease_create(x.s, LABEL, "v=1\nid=b\n", &obj) != 0)
		_exit(96);
	first = count(&x);
	say(out);
	hear(in);
	if (hsm_lease_create(x.s, LABEL, "v=1\nid=b2\n", &obj) != 0)
		_exit(97);
	second = count(&x);
	say(out);
	side_close(&x);
	_exit(first < 0 || second < 0 ? 98 : 10 * first + second);
}

static int
setup(void **state)
{
	char cmd[512], conf[128];
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/dkimkeep-store-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir);
	snprintf(cmd, sizeof(cmd), "%s/tokens", dir);
	if (mkdir(cmd, 0700) != 0 || (f = fopen(conf, "w")) == NULL)
		return -1;
	fprintf(f, "directories.tokendir = %s/tokens\nobjectstore.backend = file\n", dir);
	fclose(f);
	snprintf(pin, sizeof(pin), "%s/pin", dir);
	if ((f = fopen(pin, "w")) == NULL)
		return -1;
	fprintf(f, "1234\n");
	fclose(f);
	if (chmod(pin, 0600) != 0 || setenv("SOFTHSM2_CONF", conf, 1) != 0)
		return -1;
	/* softhsm2-util, not our own code: this process must not initialize the module. */
	snprintf(cmd, sizeof(cmd),
	    "softhsm2-util --init-token --free --label store --pin 1234 --so-pin 12345678 "
	    ">/dev/null");
	return system(cmd) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The pipes' descriptors: a side keeps only its own two, so that its end shows who is gone. */
#define NPIPE_FDS 8
static int pipes[NPIPE_FDS];

static pid_t
spawn(void (*fn)(int, int), int in, int out)
{
	pid_t pid = fork();
	int i;

	if (pid == 0) {
		for (i = 0; i < NPIPE_FDS; i++)
			if (pipes[i] != in && pipes[i] != out)
				(void)close(pipes[i]);
		fn(in, out);
	}
	return pid;
}

static void
test_each_sees_the_others_changes(void **state)
{
	int *to_a = pipes, *from_a = pipes + 2, *to_b = pipes + 4, *from_b = pipes + 6, st;
	pid_t a, b;

	(void)state;
	assert_int_equal(pipe(to_a), 0);
	assert_int_equal(pipe(from_a), 0);
	assert_int_equal(pipe(to_b), 0);
	assert_int_equal(pipe(from_b), 0);
	assert_true((a = spawn(side_a, to_a[0], from_a[1])) > 0);
	assert_true((b = spawn(side_b, to_b[0], from_b[1])) > 0);
	(void)close(to_a[0]);
	(void)close(from_a[1]);
	(void)close(to_b[0]);
	(void)close(from_b[1]);
	/* B has listed; A creates; B creates and lists.  A side that fails exits: EOF here. */
	assert_true(heard(from_b[0]));
	say(to_a[1]);
	assert_true(heard(from_a[0]));
	say(to_b[1]);
	assert_true(heard(from_b[0]));
	/* A removes its object; B creates another and lists. */
	say(to_a[1]);
	assert_true(heard(from_a[0]));
	say(to_b[1]);
	assert_true(heard(from_b[0]));
	say(to_a[1]);
	assert_int_equal(waitpid(b, &st, 0), b);
	assert_true(WIFEXITED(st));
	/* 2 then 2: A's object, then not A's removed one, beside B's own. */
	assert_int_equal(WEXITSTATUS(st), 22);
	assert_int_equal(waitpid(a, &st, 0), a);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_sees_the_others_changes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
