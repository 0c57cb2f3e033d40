/*
 * fuzz_audit_json.c - the strict JSON reader of audit log lines
 * (audit/dka_read.c dka_json_parse and its accessors).  "dkimkeep audit
 * verify" reads logs that an attacker may have edited: any line must be
 * parsed or refused with a reason, never crash the verifier.
 */
#include <stdint.h>
#include <string.h>

#include "audit/dka_read.h"
#include "common/dk_err.h"
#include "tests/fuzz/fuzz_common.h"

static void
walk(const struct dka_jdoc *d, int i, int depth)
{
	const struct dka_jnode *n;

	FUZZ_CHECK(depth <= DKA_JSON_DEPTH + 1);
	for (; i >= 0; i = n->next) {
		FUZZ_CHECK(i < d->count);
		n = &d->n[i];
		if (n->type == DKA_J_STR)
			FUZZ_CHECK(n->str != NULL && strlen(n->str) <= n->str_len);
		if (n->type == DKA_J_OBJ || n->type == DKA_J_ARR)
			walk(d, n->first, depth + 1);
	}
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const char *const keys[] = {"v", "seq", "time", "event", "sigs", "prev", "mid"};
	struct dka_jdoc *d = calloc(1, sizeof(*d));
	uint64_t u;
	size_t i, len;
	int r;

	if (d == NULL)
		abort();
	r = dka_json_parse((const char *)data, size, d);
	FUZZ_CHECK(memchr(d->err, '\0', sizeof(d->err)) != NULL);
	if (r == 0) {
		FUZZ_CHECK(d->count >= 1 && d->count <= DKA_JSON_NODES);
		FUZZ_CHECK(d->n[0].type == DKA_J_OBJ);
		walk(d, 0, 0);
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			(void)dka_json_get(d, 0, keys[i]);
			(void)dka_json_str(d, 0, keys[i], &len);
			(void)dka_json_u64(d, 0, keys[i], &u);
		}
	} else {
		FUZZ_CHECK(r == DK_ERR_PARSE || r == DK_ERR_NOMEM || r == DK_ERR_TOO_LARGE);
	}
	/* The arena is reused: a second line through the same doc. */
	(void)dka_json_parse("{\"v\":1}", 7, d);
	dka_json_free(d);
	free(d);
	return 0;
}
