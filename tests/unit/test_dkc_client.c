/*
 * test_dkc_client.c - libdkimkeep's decoding of what comes back on the
 * socket, against a fake daemon that writes chosen frames (regression
 * cases found by tests/fuzz/fuzz_response).
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/dkimkeep_client.h"
#include "common/dk_err.h"
#include "common/dk_frame.h"
#include "proto/dkimkeep.pb-c.h"

struct fake {
	char dir[64];
	char path[108];
	int lfd, fd;
	struct dkc_conn *c;
};

/* A listening socket, a client connected to it, and the daemon's end. */
static int
fake_setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_un sun;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/dkimkeep-test-client-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/sign.sock", f->dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, f->path, strlen(f->path));
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(f->lfd, 1), 0);
	assert_int_equal(dkc_connect(f->path, 2000, &f->c), 0);
	f->fd = accept(f->lfd, NULL, NULL);
	assert_true(f->fd >= 0);
	*state = f;
	return 0;
}

static int
fake_teardown(void **state)
{
	struct fake *f = *state;

	dkc_close(f->c);
	close(f->fd);
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* The daemon's side: one framed Response, then the end of the stream. */
static void
fake_answer(struct fake *f, const Dkimkeep__V1__Response *resp)
{
	size_t n = dkimkeep__v1__response__get_packed_size(resp);
	uint8_t *buf = malloc(n + DK_FRAME_HEADER_LEN);

	assert_non_null(buf);
	dk_frame_put_len(buf, (uint32_t)n);
	dkimkeep__v1__response__pack(resp, buf + DK_FRAME_HEADER_LEN);
	assert_int_equal(write(f->fd, buf, n + DK_FRAME_HEADER_LEN), (ssize_t)(n + 4));
	shutdown(f->fd, SHUT_WR);
	free(buf);
}

/*
 * fuzz_response: a Response with status OK and no SignResponse was taken
 * as a successful answer with no signature, so "dkimkeep sign" wrote the
 * message unsigned and exited 0, and the milter passed it on unsigned.
 */
static void
test_ok_without_sign_is_refused(void **state)
{
	Dkimkeep__V1__Response resp;
	struct fake *f = *state;
	struct dkc_result res;

	dkimkeep__v1__response__init(&resp);
	resp.id = 1;
	resp.status = DKIMKEEP__V1__STATUS__OK;
	fake_answer(f, &resp);
	assert_int_equal(dkc_result_recv(f->c, &res), DK_ERR_PROTO);
	assert_int_equal(res.nsigs, 0);
	assert_null(res.error);
}

static void
test_ok_with_empty_sign_is_refused(void **state)
{
	Dkimkeep__V1__Response resp;
	Dkimkeep__V1__SignResponse sr;
	struct fake *f = *state;
	struct dkc_result res;

	dkimkeep__v1__response__init(&resp);
	dkimkeep__v1__sign_response__init(&sr);
	resp.id = 1;
	resp.status = DKIMKEEP__V1__STATUS__OK;
	resp.kind_case = DKIMKEEP__V1__RESPONSE__KIND_SIGN;
	resp.sign = &sr;
	fake_answer(f, &resp);
	assert_int_equal(dkc_result_recv(f->c, &res), DK_ERR_PROTO);
}

static void
test_refusal_is_a_result(void **state)
{
	Dkimkeep__V1__Response resp;
	struct fake *f = *state;
	struct dkc_result res;

	dkimkeep__v1__response__init(&resp);
	resp.id = 7;
	resp.status = DKIMKEEP__V1__STATUS__BUSY;
	resp.error = (char *)(uintptr_t) "busy; retry";
	fake_answer(f, &resp);
	assert_int_equal(dkc_result_recv(f->c, &res), 0);
	assert_int_equal(res.id, 7);
	assert_int_equal(res.status, DKC_BUSY);
	assert_string_equal(res.error, "busy; retry");
	dkc_result_free(&res);
}

static void
test_signed(void **state)
{
	Dkimkeep__V1__Response resp;
	Dkimkeep__V1__SignResponse sr;
	Dkimkeep__V1__Signature sig = DKIMKEEP__V1__SIGNATURE__INIT, *sigs[1] = {&sig};
	struct fake *f = *state;
	struct dkc_result res;

	dkimkeep__v1__response__init(&resp);
	dkimkeep__v1__sign_response__init(&sr);
	sig.header = (char *)(uintptr_t) "DKIM-Signature: v=1; b=AAAA";
	sig.algorithm = DKIMKEEP__V1__ALGORITHM__ED25519_SHA256;
	sig.selector = (char *)(uintptr_t) "s1";
	sr.n_signatures = 1;
	sr.signatures = sigs;
	sr.domain = (char *)(uintptr_t) "example.com";
	resp.id = 2;
	resp.status = DKIMKEEP__V1__STATUS__OK;
	resp.kind_case = DKIMKEEP__V1__RESPONSE__KIND_SIGN;
	resp.sign = &sr;
	fake_answer(f, &resp);
	assert_int_equal(dkc_result_recv(f->c, &res), 0);
	assert_int_equal(res.nsigs, 1);
	assert_int_equal(res.sigs[0].alg, DKC_ALG_ED25519_SHA256);
	assert_string_equal(res.sigs[0].selector, "s1");
	assert_string_equal(res.domain, "example.com");
	dkc_result_free(&res);
}

/* A frame over the 1 MiB limit is a protocol error, read no further. */
static void
test_frame_too_large(void **state)
{
	static const uint8_t hdr[4] = {0x00, 0x10, 0x00, 0x01};
	struct fake *f = *state;
	struct dkc_result res;

	assert_int_equal(write(f->fd, hdr, sizeof(hdr)), 4);
	shutdown(f->fd, SHUT_WR);
	assert_int_equal(dkc_result_recv(f->c, &res), DK_ERR_PROTO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_ok_without_sign_is_refused, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_ok_with_empty_sign_is_refused, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_refusal_is_a_result, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_signed, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_frame_too_large, fake_setup, fake_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
