/*
 * dka_verify.c - checking the chain, the sequence numbers, the checkpoints
 * and the token's anchor of audit files.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "audit/dka_read.h"
#include "audit/dka_verify.h"
#include "common/dk_b64.h"
#include "common/dk_err.h"

struct vstate {
	const struct dka_verify_opts *o;
	struct dka_verify_report *rep;
	struct dka_jdoc *doc;
	char (*fps)[2 * DKA_FP_LEN + 1]; /* names of the keys in o->keys */
	int have_prev;                   /* a line was read */
	uint8_t prev_hash[DKA_HASH_LEN];
	uint64_t prev_seq, prev_line;
	const char *prev_file;
	const char *cp_file; /* the last good checkpoint */
	uint64_t cp_line;
	/* the line being judged */
	const char *file;
	uint64_t line, seq;
	const char *event;
	uint8_t hash[DKA_HASH_LEN];
};

static const char *const problem_names[] = {
    [DKA_OK] = "ok",
    [DKA_BAD_LINE] = "bad-line",
    [DKA_INCOMPLETE] = "incomplete",
    [DKA_DELETED] = "deleted",
    [DKA_INSERTED] = "inserted",
    [DKA_EDITED] = "edited",
    [DKA_LINK] = "link",
    [DKA_START] = "start",
    [DKA_CHECKPOINT] = "checkpoint",
    [DKA_UNKNOWN_KEY] = "unknown-key",
    [DKA_TRUNCATED] = "truncated",
    [DKA_REWRITTEN] = "rewritten",
};

const char *
dka_problem_name(enum dka_problem p)
{
	if ((size_t)p < sizeof(problem_names) / sizeof(problem_names[0]))
		return problem_names[p];
	return "?";
}

static int bad(struct vstate *v, enum dka_problem p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first problem, on the line being judged. */
static int
bad(struct vstate *v, enum dka_problem p, const char *fmt, ...)
{
	va_list ap;

	v->rep->intact = 0;
	v->rep->problem = p;
	v->rep->file = v->file;
	v->rep->line = v->line;
	v->rep->seq = v->seq;
	va_start(ap, fmt);
	vsnprintf(v->rep->what, sizeof(v->rep->what), fmt, ap);
	va_end(ap);
	return 1;
}

static void note(struct dka_verify_report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
note(struct dka_verify_report *rep, const char *fmt, ...)
{
	va_list ap;

	if (rep->nnotes >= DKA_VERIFY_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(rep->notes[rep->nnotes++], sizeof(rep->notes[0]), fmt, ap);
	va_end(ap);
}

/* Ed25519 over msg with the raw public key pub. */
static int
ed25519_ok(const uint8_t pub[DKA_PUB_LEN], const uint8_t *msg, size_t len, const uint8_t *sig,
    size_t siglen)
{
	EVP_PKEY *pk;
	EVP_MD_CTX *ctx = NULL;
	int ok = 0;

	if ((pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, DKA_PUB_LEN)) == NULL)
		return 0;
	ok = (ctx = EVP_MD_CTX_new()) != NULL &&
	     EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
	     EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return ok;
}

static int
check_checkpoint(struct vstate *v, const char *time, const char *prev)
{
	const char *fp, *sig64;
	struct dk_buf msg, sig;
	size_t i, siglen = 0;
	int r;

	dk_buf_init(&msg, 512);
	dk_buf_init(&sig, 128);
	fp = dka_json_str(v->doc, 0, "key", NULL);
	sig64 = dka_json_str(v->doc, 0, "sig", &siglen);
	if (fp == NULL || sig64 == NULL || dk_b64_decode(&sig, sig64, siglen) != 0 ||
	    sig.len != DKA_SIG_LEN) {
		r = bad(v, DKA_CHECKPOINT,
		    "the checkpoint has no key, or no 64-byte base64 sig: it was forged or edited");
		goto out;
	}
	for (i = 0; i < v->o->nkeys; i++) {
		if (strcmp(v->fps[i], fp) == 0)
			break;
	}
	if (i == v->o->nkeys) {
		r = bad(v, DKA_UNKNOWN_KEY,
		    "the checkpoint is signed by key %s, which is not among the audit public keys "
		    "given (--pubkey, or the token's): give the key that was in use then, or the "
		    "checkpoint is forged",
		    fp);
		goto out;
	}
	if ((r = dka_checkpoint_msg(v->seq, time, prev, &msg)) != 0)
		goto out;
	if (!ed25519_ok(v->o->keys[i], msg.data, msg.len, sig.data, sig.len)) {
		if (v->cp_file != NULL)
			r = bad(v, DKA_CHECKPOINT,
			    "the checkpoint's signature does not verify over this place in the "
			    "chain (seq, time, head): it is forged, or copied here from elsewhere "
			    "(replayed), or records after the checkpoint on %s line %" PRIu64
			    " were rewritten",
			    v->cp_file, v->cp_line);
		else
			r = bad(v, DKA_CHECKPOINT,
			    "the checkpoint's signature does not verify over this place in the "
			    "chain (seq, time, head): it is forged, or copied here from elsewhere "
			    "(replayed), or records before it were rewritten");
		goto out;
	}
	v->rep->checkpoints++;
	v->rep->last_cp_seq = v->seq;
	v->rep->unsealed = 0;
	v->cp_file = v->file;
	v->cp_line = v->line;
	r = 0;
out:
	dk_buf_free(&msg);
	dk_buf_free(&sig);
	return r;
}

/* The first line of a file: its log.open record, linked to what came before. */
static int
check_open(struct vstate *v, const uint8_t prev[DKA_HASH_LEN])
{
	static const uint8_t zero[DKA_HASH_LEN];
	const char *link = dka_json_str(v->doc, 0, "link", NULL);

	if (strcmp(v->event, "log.open") != 0 || link == NULL)
		return bad(v, !v->have_prev ? DKA_START : DKA_LINK,
		    "the file does not begin with its log.open record: the lines before seq "
		    "%" PRIu64 " were removed from its start",
		    v->seq);
	if (v->have_prev) {
		if (v->seq != v->prev_seq + 1 || memcmp(prev, v->prev_hash, DKA_HASH_LEN) != 0)
			return bad(v, DKA_LINK,
			    "the file does not continue %s (which ends at line %" PRIu64
			    ", seq %" PRIu64 "): that file was cut or changed at its end, a file "
			    "between them is missing, or the files are not given oldest first",
			    v->prev_file, v->prev_line, v->prev_seq);
		return 0;
	}
	if (strcmp(link, "genesis") == 0) {
		if (v->seq != 1 || memcmp(prev, zero, DKA_HASH_LEN) != 0)
			return bad(v, DKA_BAD_LINE,
			    "the log's first record (link genesis) must have seq 1 and a zero "
			    "prev: it was edited");
		return 0;
	}
	note(v->rep,
	    "%s starts at seq %" PRIu64 ", after earlier files that were not given (link %s); "
	    "give them too, oldest first, to check the whole log",
	    v->file, v->seq, link);
	return 0;
}

/* Sequence number and hash link to the line before, in the same file. */
static int
check_chain(struct vstate *v, const uint8_t prev[DKA_HASH_LEN])
{
	char missing[96];

	if (v->seq > v->prev_seq + 1) {
		if (v->seq == v->prev_seq + 2)
			snprintf(missing, sizeof(missing), "the record with seq %" PRIu64 " is",
			    v->prev_seq + 1);
		else
			snprintf(missing, sizeof(missing),
			    "the records with seq %" PRIu64 " to %" PRIu64 " are", v->prev_seq + 1,
			    v->seq - 1);
		return bad(v, DKA_DELETED,
		    "seq %" PRIu64 " follows seq %" PRIu64 " (line %" PRIu64 "): %s missing "
		    "here (deleted, or moved elsewhere: reordered)",
		    v->seq, v->prev_seq, v->prev_line, missing);
	}
	if (v->seq <= v->prev_seq)
		return bad(v, DKA_INSERTED,
		    "seq %" PRIu64 " comes after seq %" PRIu64 " (line %" PRIu64 "): a record was "
		    "inserted or duplicated here, or records were reordered",
		    v->seq, v->prev_seq, v->prev_line);
	if (memcmp(prev, v->prev_hash, DKA_HASH_LEN) != 0) {
		/* The line before is the one that no longer hashes as it did. */
		v->line = v->prev_line;
		v->seq = v->prev_seq;
		return bad(v, DKA_EDITED,
		    "the record was changed after it was written: the next line (seq %" PRIu64
		    ") carries a different hash for it%s",
		    v->prev_seq + 1,
		    v->line == 1 ? "" : " (or lines were removed or inserted after it)");
	}
	return 0;
}

/* The fields every record has; DKA_BAD_LINE when one is missing or malformed. */
static int
check_fields(struct vstate *v, const char **time, const char **prevhex, uint8_t prev[32])
{
	size_t tl = 0, pl = 0;
	uint64_t ver = 0;
	int64_t us;

	if (dka_json_u64(v->doc, 0, "v", &ver) != 0 || ver != DKA_VERSION)
		return bad(
		    v, DKA_BAD_LINE, "no \"v\":%d: not a record of this format", DKA_VERSION);
	if (dka_json_u64(v->doc, 0, "seq", &v->seq) != 0 || v->seq == 0)
		return bad(v, DKA_BAD_LINE, "no valid \"seq\"");
	if ((*time = dka_json_str(v->doc, 0, "time", &tl)) == NULL ||
	    dka_time_parse(*time, tl, &us) != 0 || tl != DKA_TIME_LEN)
		return bad(v, DKA_BAD_LINE, "no valid \"time\"");
	if ((v->event = dka_json_str(v->doc, 0, "event", NULL)) == NULL || v->event[0] == '\0')
		return bad(v, DKA_BAD_LINE, "no \"event\"");
	if ((*prevhex = dka_json_str(v->doc, 0, "prev", &pl)) == NULL ||
	    dka_unhex(*prevhex, pl, prev, DKA_HASH_LEN) != 0)
		return bad(v, DKA_BAD_LINE, "no valid \"prev\" (64 hex digits)");
	return 0;
}

static int
check_anchor(struct vstate *v)
{
	if (!v->o->have_anchor || v->seq != v->o->anchor.seq)
		return 0;
	if (strcmp(v->event, "checkpoint") != 0 ||
	    memcmp(v->hash, v->o->anchor.hash, DKA_HASH_LEN) != 0)
		return bad(v, DKA_REWRITTEN,
		    "the token's newest checkpoint has this seq, but this line is not that "
		    "checkpoint: the log was rewritten from here (or the files belong to another "
		    "log than the token's)");
	v->rep->anchor_checked = 1;
	return 0;
}

/* Judge one line; 0 good, 1 bad (rep filled), <0 error. */
static int
check_line(struct vstate *v, const uint8_t *line, size_t len, int complete)
{
	const char *time = NULL, *prevhex = NULL;
	uint8_t prev[DKA_HASH_LEN];
	uint64_t line_seq;
	int r;

	v->seq = 0;
	if (!complete)
		return bad(v, DKA_INCOMPLETE,
		    "the file ends in the middle of a line (no newline): it was cut, or the "
		    "writer crashed during a write that was never acknowledged");
	if ((r = dka_json_parse((const char *)line, len, v->doc)) != 0)
		return r == DK_ERR_PARSE ? bad(v, DKA_BAD_LINE,
		                               "not an audit record (%s): the line was edited "
		                               "or something else wrote it",
		                               v->doc->err)
		                         : r;
	if ((r = check_fields(v, &time, &prevhex, prev)) != 0)
		return r;
	dka_line_hash(line, len, v->hash);
	line_seq = v->seq;
	if (v->line == 1)
		r = check_open(v, prev);
	else
		r = check_chain(v, prev);
	if (r != 0)
		return r;
	if (strcmp(v->event, "checkpoint") == 0)
		r = check_checkpoint(v, time, prevhex);
	else
		v->rep->unsealed++;
	if (r != 0 || (r = check_anchor(v)) != 0)
		return r;
	if (v->rep->first_seq == 0)
		v->rep->first_seq = line_seq;
	v->rep->last_seq = line_seq;
	v->have_prev = 1;
	memcpy(v->prev_hash, v->hash, DKA_HASH_LEN);
	v->prev_seq = line_seq;
	v->prev_line = v->line;
	v->prev_file = v->file;
	return 0;
}

static int
verify_file(struct vstate *v, const char *path)
{
	struct dka_lines it;
	const uint8_t *line;
	size_t len;
	int complete = 0, r;

	if ((r = dka_lines_open(path, &it)) != 0)
		return r;
	v->file = path;
	v->line = 0;
	while ((r = dka_lines_next(&it, &line, &len, &complete)) == 1) {
		v->line = it.lineno;
		v->rep->lines++;
		if ((r = check_line(v, line, len, complete)) != 0)
			break;
	}
	if (r == DK_ERR_TOO_LARGE) {
		v->line = it.lineno;
		r = bad(v, DKA_BAD_LINE, "a line longer than %d bytes: not an audit record",
		    DKA_LINE_MAX);
	}
	if (r == DK_ERR_IO)
		r = dk_err_set(DK_ERR_IO, "%s: %s", path, dk_err_detail());
	if (r == 0 && v->line == 0)
		note(v->rep, "%s is empty", path);
	dka_lines_close(&it);
	return r;
}

/* After the last line: truncation against the anchor, and what is worth knowing. */
static void
verify_end(struct vstate *v)
{
	struct dka_verify_report *rep = v->rep;
	const struct dka_verify_opts *o = v->o;

	if (o->have_anchor && !rep->anchor_checked) {
		if (o->anchor.seq > rep->last_seq) {
			v->file = v->prev_file != NULL ? v->prev_file : v->file;
			v->line = v->prev_line;
			v->seq = v->prev_seq;
			bad(v, DKA_TRUNCATED,
			    "the log ends here at seq %" PRIu64 ", but the token's newest "
			    "checkpoint is seq %" PRIu64 " (written %lld): records were removed "
			    "from the end (truncated back past a checkpoint)",
			    rep->last_seq, o->anchor.seq, (long long)o->anchor_time);
			return;
		}
		note(rep,
		    "the token's newest checkpoint (seq %" PRIu64 ") is before the files given: "
		    "it was not checked",
		    o->anchor.seq);
	}
	if (o->have_anchor && rep->last_cp_seq > o->anchor.seq)
		note(rep,
		    "the files hold checkpoints newer than the token's anchor (seq %" PRIu64 "): "
		    "the anchor was not updated (see the daemon's log)",
		    o->anchor.seq);
	if (!o->have_anchor)
		note(rep, "the token's anchor was not read: truncation back to an earlier "
		          "checkpoint cannot be ruled out (verify with the config and the token)");
	if (rep->checkpoints == 0 && rep->lines > 0)
		note(rep, "no checkpoint: nothing in these files is protected against someone "
		          "who rewrites them whole");
	if (rep->unsealed > 0 && rep->lines > 0)
		note(rep,
		    "the last %" PRIu64
		    " records come after the last checkpoint and are not sealed "
		    "yet (the daemon seals within a minute and at exit)",
		    rep->unsealed);
}

int
dka_verify(const char *const *paths, size_t npaths, const struct dka_verify_opts *o,
    struct dka_verify_report *rep)
{
	struct vstate v;
	size_t i;
	int r = 0;

	memset(rep, 0, sizeof(*rep));
	memset(&v, 0, sizeof(v));
	rep->intact = 1;
	v.o = o;
	v.rep = rep;
	if ((v.doc = calloc(1, sizeof(*v.doc))) == NULL ||
	    (v.fps = calloc(o->nkeys + 1, sizeof(*v.fps))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < o->nkeys; i++)
		dka_key_fp(o->keys[i], v.fps[i]);
	for (i = 0; i < npaths && rep->intact; i++) {
		rep->files++;
		if ((r = verify_file(&v, paths[i])) < 0)
			goto out;
	}
	r = 0;
	if (rep->intact)
		verify_end(&v);
out:
	if (v.doc != NULL)
		dka_json_free(v.doc);
	free(v.doc);
	free(v.fps);
	return r;
}
