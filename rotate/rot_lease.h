/*
 * rot_lease.h - one rotation driver per token among many daemons and
 * operators (docs/scaling.md, "Rotation with many daemons").
 *
 * The lease lives in the token as lease objects (hsm_lease_*).  PKCS#11 has
 * no compare-and-swap, so a contender looks, creates its own object, waits
 * a settle time, lists again and the smallest id among the unexpired
 * objects wins; losers remove theirs.  A daemon renews at each step by
 * creating a new object before removing the old one; "key step" removes
 * its object when it ends (rot_lease_release).
 */
#ifndef ROT_LEASE_H
#define ROT_LEASE_H

#include <stdint.h>

#include "hsm/hsm.h"

#define ROT_LEASE_LABEL "rotation" /* one lease per token: all its rings */

struct rot_lease {
	uint64_t id;          /* random, for the life of the process; the smallest wins */
	char holder[128];     /* host/program/pid, for people reading the token */
	char where[96];       /* boot id and pid namespace: "is that pid ours to check?" */
	int64_t ttl;          /* seconds a lease lasts without renewal */
	int64_t skew;         /* seconds of clock difference allowed between hosts */
	unsigned create_ms;   /* D: most time from the first listing to our create */
	unsigned settle_ms;   /* T > D: wait between our create and the deciding listing */
	int op;               /* an operator's command: daemons hand the lease over to it */
	int taken;            /* after rot_lease_take: 1 when newly taken (not renewed) */
	int yielded;          /* after rot_lease_take: a daemon gave the lease to an operator */
	int64_t made;         /* UNIX seconds our newest object was created (operators renew) */
	char other[128];      /* after a refusal: the holder that has it */
	int64_t other_expiry; /* and until when */
};

/*
 * Fill l for program (e.g. "dkimkeepd") with a fresh random id; ttl and
 * skew in seconds.  DK_ERR_INTERNAL when no random bytes can be had.
 */
int rot_lease_init(struct rot_lease *l, const char *program, int64_t ttl, int64_t skew);

/*
 * Take or renew the lease of the token behind s.  *held = 1 when this
 * process drives its rings until the next renewal, 0 when another holder
 * has it (named in l->other) or the race was lost.  Errors of the token are
 * returned; the caller then does not drive that token.
 *
 * An operator's lease (l->op, "dkimkeep key ...") goes before the daemons':
 * its object stays while it waits, a daemon that holds the lease removes
 * its own at its next step (after the step it was in has ended) and no
 * daemon takes the lease while an operator's object is there.  So an
 * operator calls this again (every fraction of a second) until *held, for
 * as long as it will wait: about one step_interval.  Between operators
 * the first one wins, as between daemons.
 */
int rot_lease_take(struct rot_lease *l, struct hsm_session *s, int *held);

/* Remove this process's lease objects from the token (at exit). */
int rot_lease_release(struct rot_lease *l, struct hsm_session *s);

#endif /* ROT_LEASE_H */
