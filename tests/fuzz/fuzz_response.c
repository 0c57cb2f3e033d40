/*
 * fuzz_response.c - what libdkimkeep reads from the socket: the daemon's
 * frames, decoded by dkc_result_recv() (sign answers) or dkc_status().
 * A hostile or broken peer on the socket must not crash an MTA's client.
 * The input is sent by a fake daemon on a real Unix socket to the real
 * client code; its first byte chooses what the client asks.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "client/dkimkeep_client.h"
#include "common/dk_err.h"
#include "tests/fuzz/fuzz_common.h"

#define INPUT_MAX (128 * 1024) /* fits the socket buffer: written before it is read */

static char sock_dir[64], sock_path[108];
static int listen_fd = -1;

/* libFuzzer has no teardown: the socket and its dir go at exit. */
static void
cleanup(void)
{
	unlink(sock_path);
	rmdir(sock_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un sun;
	int sz = 4 * INPUT_MAX;

	(void)argc;
	(void)argv;
	snprintf(sock_dir, sizeof(sock_dir), "/tmp/dkimkeep-fuzz-resp-XXXXXX");
	if (mkdtemp(sock_dir) == NULL)
		abort();
	atexit(cleanup);
	snprintf(sock_path, sizeof(sock_path), "%s/sign.sock", sock_dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, sock_path, strlen(sock_path));
	if ((listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(listen_fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)) != 0 ||
	    bind(listen_fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    listen(listen_fd, 4) != 0) {
		fprintf(stderr, "fuzz_response: %s: %s\n", sock_path, strerror(errno));
		abort();
	}
	return 0;
}

static void
check_result(const struct dkc_result *res)
{
	size_t i;

	FUZZ_CHECK(res->error != NULL && res->domain != NULL);
	FUZZ_CHECK(res->nsigs <= 2);
	if (res->status == DKC_OK)
		FUZZ_CHECK(res->nsigs > 0);
	for (i = 0; i < res->nsigs; i++)
		FUZZ_CHECK(res->sigs[i].header != NULL && res->sigs[i].selector != NULL &&
		           res->sigs[i].slot != NULL && res->sigs[i].key_id != NULL &&
		           res->sigs[i].token != NULL);
}

static void
check_status(const struct dkc_status_info *st)
{
	size_t i;

	FUZZ_CHECK(st->version != NULL);
	for (i = 0; i < st->ntokens; i++)
		FUZZ_CHECK(st->tokens[i].name != NULL && st->tokens[i].last_error != NULL);
	for (i = 0; i < st->nrings; i++)
		FUZZ_CHECK(st->rings[i].domain != NULL && st->rings[i].key_id != NULL);
	for (i = 0; i < st->ncounters; i++)
		FUZZ_CHECK(st->counters[i].name != NULL);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct dkc_conn *c = NULL;
	struct dkc_status_info *st = NULL;
	struct dkc_result res;
	int fd, i, r;
	unsigned mode;

	if (size < 1 || size > INPUT_MAX)
		return 0;
	mode = data[0] % 2;
	data++;
	size--;
	if (dkc_connect(sock_path, 1000, &c) != 0)
		abort();
	if ((fd = accept(listen_fd, NULL, NULL)) < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	shutdown(fd, SHUT_WR); /* the client sees the end instead of waiting */
	if (mode == 0) {
		for (i = 0; i < 16; i++) {
			r = dkc_result_recv(c, &res);
			if (r != 0)
				break;
			check_result(&res);
			dkc_result_free(&res);
		}
	} else {
		r = dkc_status(c, &st);
		if (r == 0) {
			check_status(st);
			dkc_status_free(st);
		} else {
			FUZZ_CHECK(st == NULL);
		}
	}
	dkc_close(c);
	close(fd);
	return 0;
}
