/*
 * rot_lease.c - the rotation lease: one driver per token (rot_lease.h).
 *
 * Why two contenders A and B cannot both win (objects a and b, D and T as
 * in struct rot_lease, T > D):  a contender that sees an unexpired lease of
 * another holder in its first listing does not create.  So both created
 * only if each listed before the other's create: look(A) < t(b) and
 * t(a) < look(A) + D, hence t(a) < t(b) + D < t(b) + T <= list2(B); the
 * same holds with A and B swapped.  Each deciding listing therefore holds
 * both objects (a loser removes its object only after its own deciding
 * listing), both apply the same order (smallest id) to the same pair, and
 * exactly one wins.  No clock is compared between hosts except for expiry,
 * which only matters when taking over from a holder that stopped renewing,
 * and carries l->skew of margin.  This needs listings that hold every
 * object made before them: SoftHSM's file store gives that to dkimkeep's
 * processes only through hsm/hsm_store.c (without it, two "key step" both
 * won: each deciding listing missed the other's object).
 *
 * Operators ("dkimkeep key ...", l->op) decide among themselves the same
 * way, and go before daemons: a daemon neither creates nor wins while an
 * operator's object exists and drops its own at its next step; an operator
 * drives once a listing at least T after its create shows no daemon object
 * (docs/scaling.md has why the two never drive together).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "common/dk_time.h"
#include "rotate/rot_lease.h"

struct lease_val {
	uint64_t id;
	int64_t expiry;
	int op;
	long pid;
	char holder[128];
	char where[96];
};

/* What one listing of the lease objects holds (lease_scan). */
struct lease_seen {
	size_t mine, others, ops; /* live objects: ours, others', others' that are operators' */
	uint64_t min_id;          /* smallest live id among daemons' objects (and ours) */
	uint64_t min_op;          /* smallest live id among operators' objects (and ours, if op) */
};

/*
 * "v=1\nid=<16 hex>\nholder=<text>\nexpiry=<UNIX seconds>\n[op=1\n]where=<text>\n";
 * -1 when it is not that.
 */
static int
lease_parse(const char *text, struct lease_val *v)
{
	const char *p;
	unsigned long long id;
	long long exp;
	size_t n;

	memset(v, 0, sizeof(*v));
	if (strncmp(text, "v=1\n", 4) != 0 || (p = strstr(text, "\nid=")) == NULL ||
	    sscanf(p + 4, "%16llx", &id) != 1 || (p = strstr(text, "\nexpiry=")) == NULL ||
	    sscanf(p + 8, "%lld", &exp) != 1)
		return -1;
	v->id = id;
	v->expiry = exp;
	v->op = strstr(text, "\nop=1\n") != NULL;
	if ((p = strstr(text, "\nholder=")) != NULL) {
		n = strcspn(p + 8, "\n");
		if (n >= sizeof(v->holder))
			n = sizeof(v->holder) - 1;
		memcpy(v->holder, p + 8, n);
		if ((p = strrchr(v->holder, '/')) != NULL)
			v->pid = strtol(p + 1, NULL, 10);
	}
	if ((p = strstr(text, "\nwhere=")) != NULL) {
		n = strcspn(p + 7, "\n");
		if (n >= sizeof(v->where))
			n = sizeof(v->where) - 1;
		memcpy(v->where, p + 7, n);
	}
	return 0;
}

/*
 * Where this process lives: the kernel's boot id and our pid namespace.
 * A lease object with the same text names a pid we can ask the kernel
 * about; "" when either cannot be read (then no one is judged by pid).
 */
static void
lease_where(char *out, size_t len)
{
	char boot[64] = "", ns[64] = "";
	ssize_t k;
	FILE *f;

	out[0] = '\0';
	if ((f = fopen("/proc/sys/kernel/random/boot_id", "r")) == NULL)
		return;
	if (fgets(boot, sizeof(boot), f) == NULL)
		boot[0] = '\0';
	fclose(f);
	boot[strcspn(boot, "\n")] = '\0';
	if ((k = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1)) <= 0)
		return;
	ns[k] = '\0';
	if (boot[0] != '\0')
		snprintf(out, len, "%s/%s", boot, ns);
}

/*
 * Is the holder of lv a process of this machine and pid namespace that has
 * ended (killed, crashed)?  Its lease need not run out: a "dkimkeep key
 * step" killed with -9 does not block the next one for its whole ttl.
 */
static int
lease_holder_gone(const struct rot_lease *l, const struct lease_val *lv)
{
	if (l->where[0] == '\0' || strcmp(lv->where, l->where) != 0 || lv->pid <= 0)
		return 0;
	return kill((pid_t)lv->pid, 0) != 0 && errno == ESRCH;
}

int
rot_lease_init(struct rot_lease *l, const char *program, int64_t ttl, int64_t skew)
{
	char host[64];

	memset(l, 0, sizeof(*l));
	if (RAND_bytes((unsigned char *)&l->id, sizeof(l->id)) != 1)
		return dk_err_set(DK_ERR_INTERNAL, "no random bytes for the rotation lease id");
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = '\0';
	snprintf(l->holder, sizeof(l->holder), "%s/%s/%ld", host, program, (long)getpid());
	lease_where(l->where, sizeof(l->where));
	l->ttl = ttl;
	l->skew = skew;
	l->create_ms = 1000;
	l->settle_ms = 1500;
	return 0;
}

static int
lease_create(struct rot_lease *l, struct hsm_session *s, unsigned long *obj)
{
	char text[HSM_LEASE_VALUE_MAX];
	int k;

	/* where= last: a value cut at HSM_LEASE_VALUE_MAX loses only that (judged by expiry). */
	k = snprintf(text, sizeof(text),
	    "v=1\nid=%016" PRIx64 "\nholder=%s\nexpiry=%lld\n%swhere=%s\n", l->id, l->holder,
	    (long long)(time(NULL) + l->ttl), l->op ? "op=1\n" : "", l->where);
	if (k < 0)
		return dk_err_set(DK_ERR_INTERNAL, "cannot format the rotation lease");
	l->made = (int64_t)time(NULL);
	return hsm_lease_create(s, ROT_LEASE_LABEL, text, obj);
}

/*
 * List the lease objects, remove the expired and unreadable ones, and count
 * the live ones in *seen (the first other holder named in l->other).
 */
static int
lease_scan(struct rot_lease *l, struct hsm_session *s, struct hsm_lease **v, size_t *n,
    struct lease_seen *seen)
{
	struct lease_val lv;
	time_t now = time(NULL);
	size_t i;
	int r;

	memset(seen, 0, sizeof(*seen));
	seen->min_id = seen->min_op = UINT64_MAX;
	if ((r = hsm_lease_list(s, ROT_LEASE_LABEL, v, n)) != 0)
		return r;
	for (i = 0; i < *n; i++) {
		if (lease_parse((*v)[i].value, &lv) != 0 || lv.expiry + l->skew < now ||
		    (lv.id != l->id && lease_holder_gone(l, &lv))) {
			if (lv.expiry != 0)
				dk_log_info("rotation lease of %s %s; removed", lv.holder,
				    lv.expiry + l->skew < now ? "expired"
				                              : "ended (no such process)");
			(void)hsm_lease_destroy(s, (*v)[i].obj);
			(*v)[i].obj = 0;
			continue;
		}
		if (!lv.op && lv.id < seen->min_id)
			seen->min_id = lv.id;
		if (lv.op && lv.id < seen->min_op)
			seen->min_op = lv.id;
		if (lv.id == l->id) {
			seen->mine++;
			continue;
		}
		seen->ops += lv.op;
		/* An operator's object is named first: it is the one everyone waits for. */
		if (seen->others++ == 0 || (lv.op && seen->ops == 1)) {
			snprintf(l->other, sizeof(l->other), "%s", lv.holder);
			l->other_expiry = lv.expiry;
		}
	}
	return 0;
}

/* Remove our objects other than keep. */
static void
lease_drop_mine(
    struct rot_lease *l, struct hsm_session *s, struct hsm_lease *v, size_t n, unsigned long keep)
{
	struct lease_val lv;
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].obj != 0 && v[i].obj != keep && lease_parse(v[i].value, &lv) == 0 &&
		    lv.id == l->id)
			(void)hsm_lease_destroy(s, v[i].obj);
}

/* Create our object within D of the listing at t0 and let it settle; 0 and *obj, or backed off. */
static int
lease_create_settled(struct rot_lease *l, struct hsm_session *s, uint64_t t0, unsigned long *obj)
{
	struct timespec ts;
	int r;

	*obj = 0;
	if ((r = lease_create(l, s, obj)) != 0)
		return r;
	if (dk_now_us() - t0 > (uint64_t)l->create_ms * 1000u) {
		/* Too slow for the settle time to cover us: back off, try again later. */
		r = hsm_lease_destroy(s, *obj);
		*obj = 0;
		return r;
	}
	ts.tv_sec = l->settle_ms / 1000;
	ts.tv_nsec = (long)(l->settle_ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0)
		;
	return 0;
}

/*
 * Who wins in the deciding listing (see the top).  A daemon yields to any
 * operator's object and to a daemon with a smaller id; an operator yields
 * only to an operator with a smaller id (daemons hand over to it later).
 */
static int
daemon_wins(const struct rot_lease *l, const struct lease_seen *seen)
{
	return seen->mine > 0 && seen->ops == 0 && seen->min_id == l->id;
}

static int
op_wins(const struct rot_lease *l, const struct lease_seen *seen)
{
	return seen->mine > 0 && seen->min_op == l->id;
}

/*
 * Contend for the lease after a listing at t0 that showed no one to wait
 * for: create our object, let it settle, list again into *seen and decide
 * by wins().  0 and *obj when we won (our object stays); 0 and *obj = 0
 * when we backed off or lost (our object removed); on an error our object
 * is removed too.
 */
static int
lease_contend(struct rot_lease *l, struct hsm_session *s, uint64_t t0,
    int (*wins)(const struct rot_lease *, const struct lease_seen *), struct lease_seen *seen,
    unsigned long *obj)
{
	struct hsm_lease *v = NULL;
	size_t n = 0;
	int r;

	if ((r = lease_create_settled(l, s, t0, obj)) != 0 || *obj == 0)
		goto out;
	if ((r = lease_scan(l, s, &v, &n, seen)) != 0) {
		(void)hsm_lease_destroy(s, *obj);
		*obj = 0;
	} else if (!wins(l, seen)) {
		r = hsm_lease_destroy(s, *obj);
		*obj = 0;
	}
out:
	free(v);
	return r;
}

/*
 * A daemon, from the first listing (v, n, *seen; looked at t0): hand the
 * lease to an operator who asks, renew it, or take it by create, settle,
 * decide.
 */
static int
take_daemon(struct rot_lease *l, struct hsm_session *s, uint64_t t0, struct hsm_lease *v, size_t n,
    struct lease_seen *seen, int *held)
{
	unsigned long obj = 0;
	int r = 0;

	if (seen->ops > 0) {
		/* An operator waits: our last step has ended, so give it the token. */
		l->yielded = seen->mine > 0;
		lease_drop_mine(l, s, v, n, 0);
		goto out;
	}
	if (seen->others > 0)
		goto out; /* held by another (or another is deciding): not this time */
	if (seen->mine > 0 && (int64_t)time(NULL) - l->made < l->ttl / 3) {
		/*
		 * Two thirds of the lease left: keep it as it is.  Every create and
		 * destroy rewrites the token's directory, which other processes on a
		 * SoftHSM token must list again (docs/rotation.md, "A stale view").
		 */
		*held = 1;
		goto out;
	}
	if (seen->mine > 0) {
		/* Renew: the new object first, then the old ones, so one always exists. */
		if ((r = lease_create(l, s, &obj)) != 0)
			goto out;
		lease_drop_mine(l, s, v, n, obj);
		*held = 1;
		goto out;
	}
	/* A daemon yields to any operator and to a daemon with a smaller id. */
	if ((r = lease_contend(l, s, t0, daemon_wins, seen, &obj)) == 0 && obj != 0) {
		*held = 1;
		l->taken = 1;
	}
out:
	return r;
}

/*
 * An operator, from the first listing (as take_daemon): among operators
 * the first wins (look, create, settle, decide, as daemons do); the winner
 * keeps its object and holds the lease once no daemon's object is left
 * (each removes its own at its next step).
 */
static int
take_op(struct rot_lease *l, struct hsm_session *s, uint64_t t0, struct hsm_lease *v, size_t n,
    struct lease_seen *seen, int *held)
{
	unsigned long obj = 0;
	int r = 0;

	if (seen->mine == 0) {
		if (seen->ops > 0)
			goto out; /* another operator's turn: wait for it */
		/* An operator yields only to an operator with a smaller id. */
		if ((r = lease_contend(l, s, t0, op_wins, seen, &obj)) != 0 || obj == 0)
			goto out;
	} else if (seen->min_op != l->id) {
		lease_drop_mine(l, s, v, n, 0); /* cannot happen (see the top); be safe */
		goto out;
	} else if ((int64_t)time(NULL) - l->made > l->ttl / 3) {
		/* Waiting long for a daemon: renew, the new object first. */
		if ((r = lease_create(l, s, &obj)) != 0)
			goto out;
		lease_drop_mine(l, s, v, n, obj);
	}
	/* Ours among operators; drive once every daemon has handed over. */
	*held = seen->others == seen->ops;
	l->taken = *held;
out:
	return r;
}

int
rot_lease_take(struct rot_lease *l, struct hsm_session *s, int *held)
{
	struct hsm_lease *v = NULL;
	struct lease_seen seen;
	uint64_t t0 = dk_now_us();
	size_t n = 0;
	int r;

	*held = 0;
	l->taken = 0;
	l->yielded = 0;
	l->other[0] = '\0';
	l->other_expiry = 0;
	/* Look first: what the listing at t0 shows decides whether to contend at all. */
	if ((r = lease_scan(l, s, &v, &n, &seen)) == 0)
		r = l->op ? take_op(l, s, t0, v, n, &seen, held)
		          : take_daemon(l, s, t0, v, n, &seen, held);
	free(v);
	return r;
}

int
rot_lease_release(struct rot_lease *l, struct hsm_session *s)
{
	struct hsm_lease *v = NULL;
	size_t n = 0;
	int r;

	if ((r = hsm_lease_list(s, ROT_LEASE_LABEL, &v, &n)) == 0)
		lease_drop_mine(l, s, v, n, 0);
	free(v);
	return r;
}
