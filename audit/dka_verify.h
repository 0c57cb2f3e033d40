/*
 * dka_verify.h - checking audit files: every line parses, sequence numbers
 * follow each other, each line carries the hash of the one before (also
 * across files), every checkpoint's signature verifies over its place in
 * the chain, and the chain reaches the checkpoint the token remembers.
 *
 * The first problem found is reported with the file, line and sequence
 * number it is on and what is wrong; later lines are not judged (after a
 * break, nothing that follows can be trusted to be in place).
 */
#ifndef DKA_VERIFY_H
#define DKA_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "audit/dka_rec.h"

#define DKA_VERIFY_NOTES 8
#define DKA_VERIFY_KEYS  64

struct dka_verify_opts {
	const uint8_t (*keys)[DKA_PUB_LEN]; /* the checkpoint public keys to accept */
	size_t nkeys;
	int have_anchor;        /* the token's newest checkpoint: */
	struct dka_head anchor; /* its seq and the hash of its line */
	int64_t anchor_time;    /* UNIX seconds */
};

/* What is wrong with the first bad line. */
enum dka_problem {
	DKA_OK = 0,
	DKA_BAD_LINE,    /* not an audit record (edited into something unreadable) */
	DKA_INCOMPLETE,  /* last line without newline: cut in the middle */
	DKA_DELETED,     /* sequence numbers skip: records removed */
	DKA_INSERTED,    /* sequence number repeats or goes back: inserted, duplicated, reordered */
	DKA_EDITED,      /* a line's hash does not match what the next line says */
	DKA_LINK,        /* a file does not continue the one before it */
	DKA_START,       /* the first file does not begin with its log.open record */
	DKA_CHECKPOINT,  /* a checkpoint signature does not verify: forged or replayed */
	DKA_UNKNOWN_KEY, /* a checkpoint signed by a key we were not given */
	DKA_TRUNCATED,   /* the token knows a newer checkpoint than the files hold */
	DKA_REWRITTEN,   /* the line at the token's checkpoint seq is not that checkpoint */
};

struct dka_verify_report {
	int intact;
	enum dka_problem problem;
	const char *file; /* of the first bad line (one of the paths given) */
	uint64_t line;    /* its line number in that file, from 1 */
	uint64_t seq;     /* its sequence number, 0 when unknown */
	char what[640];   /* what is wrong and what it means */

	size_t files;
	uint64_t lines;       /* lines read (up to the first bad one) */
	uint64_t checkpoints; /* checkpoints verified */
	uint64_t first_seq, last_seq;
	uint64_t last_cp_seq;              /* 0: none */
	uint64_t unsealed;                 /* records after the last checkpoint */
	int anchor_checked;                /* the token's anchor was found in the files */
	char notes[DKA_VERIFY_NOTES][320]; /* things to know that are not failures */
	size_t nnotes;
};

/*
 * Verify paths (in the order the log was written: oldest first) into rep.
 * Returns 0 when the files could be read (rep->intact tells the verdict),
 * DK_ERR_IO with detail when one cannot be read, DK_ERR_NOMEM.
 */
int dka_verify(const char *const *paths, size_t npaths, const struct dka_verify_opts *o,
    struct dka_verify_report *rep);

/* A short name of a problem ("edited", "deleted", ...) for --json. */
const char *dka_problem_name(enum dka_problem p);

#endif /* DKA_VERIFY_H */
