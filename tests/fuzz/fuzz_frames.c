/*
 * fuzz_frames.c - what a caller can send dkimkeepd: a stream of frames
 * (4-byte big-endian length, then a serialized Request), each unpacked
 * and, for a SignRequest, checked and copied into a job by dkd_req_fill()
 * exactly as the daemon's loop does (daemon/dkd_conn.c conn_read_cb,
 * conn_request, conn_sign).
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "common/dk_err.h"
#include "common/dk_frame.h"
#include "daemon/dkd_req.h"
#include "tests/fuzz/fuzz_common.h"

static void
job_release(struct dkd_job *job)
{
	free(job->headers);
	free(job->header_section);
	free(job->body);
	free(job);
}

static void
check_job(const struct dkd_job *job)
{
	size_t i;

	FUZZ_CHECK(job->header_len >= 1 && job->header_len <= DKIM_HEADER_SECTION_MAX);
	FUZZ_CHECK(job->header_section != NULL);
	FUZZ_CHECK(job->nalgs <= DKD_MAX_ALGS);
	FUZZ_CHECK(strlen(job->domain) <= DKIM_DOMAIN_MAX);
	for (i = 0; job->domain[i] != '\0'; i++)
		FUZZ_CHECK(!isupper((unsigned char)job->domain[i]));
	FUZZ_CHECK(strlen(job->identity) <= DKD_IDENTITY_MAX);
	FUZZ_CHECK(job->timestamp >= 0 && job->expire >= 0);
	FUZZ_CHECK(job->have_bh ? job->body == NULL : 1);
	if (job->headers != NULL)
		FUZZ_CHECK(strlen(job->headers) <= DKIM_HLIST_MAX * (DKIM_HEADER_NAME_MAX + 1));
}

static void
one_request(const uint8_t *data, size_t len)
{
	Dkimkeep__V1__Request *req;
	struct dkd_job *job;
	char text[256];
	int r;

	req = dkimkeep__v1__request__unpack(NULL, len, data);
	if (req == NULL)
		return;
	if (req->kind_case == DKIMKEEP__V1__REQUEST__KIND_SIGN) {
		FUZZ_CHECK(req->sign != NULL);
		if ((job = calloc(1, sizeof(*job))) == NULL)
			abort();
		memset(text, 'X', sizeof(text));
		text[0] = '\0';
		r = dkd_req_fill(req->sign, job, text, sizeof(text));
		FUZZ_CHECK(memchr(text, '\0', sizeof(text)) != NULL);
		if (r == 0)
			check_job(job);
		else
			FUZZ_CHECK(
			    r == DK_ERR_INVALID || r == DK_ERR_NOMEM || r == DK_ERR_TOO_LARGE);
		job_release(job);
	}
	dkimkeep__v1__request__free_unpacked(req, NULL);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	size_t off = 0;
	uint32_t flen;

	while (size - off >= DK_FRAME_HEADER_LEN) {
		flen = dk_frame_get_len(data + off);
		if (flen > DK_FRAME_MAX)
			break; /* the daemon closes the connection */
		if (size - off - DK_FRAME_HEADER_LEN < flen)
			break; /* the rest of the frame has not come yet */
		off += DK_FRAME_HEADER_LEN;
		one_request(data + off, flen);
		off += flen;
	}
	return 0;
}
