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
 * and carries l->skew of margin.
 */
#include <inttypes.h>
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
	char holder[128];
};

/* "v=1\nid=<16 hex>\nholder=<text>\nexpiry=<UNIX seconds>\n"; -1 when it is not that. */
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
	if ((p = strstr(text, "\nholder=")) != NULL) {
		n = strcspn(p + 8, "\n");
		if (n >= sizeof(v->holder))
			n = sizeof(v->holder) - 1;
		memcpy(v->holder, p + 8, n);
	}
	return 0;
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

	snprintf(text, sizeof(text), "v=1\nid=%016" PRIx64 "\nholder=%s\nexpiry=%lld\n", l->id,
	    l->holder, (long long)(time(NULL) + l->ttl));
	return hsm_lease_create(s, ROT_LEASE_LABEL, text, obj);
}

/*
 * List the lease objects, remove the expired and unreadable ones.  Counts
 * the live ones of others (the first named in l->other) and of ours, and
 * the smallest live id.
 */
static int
lease_scan(struct rot_lease *l, struct hsm_session *s, struct hsm_lease **v, size_t *n,
    size_t *others, size_t *mine, uint64_t *min_id)
{
	struct lease_val lv;
	time_t now = time(NULL);
	size_t i;
	int r;

	*others = *mine = 0;
	*min_id = UINT64_MAX;
	if ((r = hsm_lease_list(s, ROT_LEASE_LABEL, v, n)) != 0)
		return r;
	for (i = 0; i < *n; i++) {
		if (lease_parse((*v)[i].value, &lv) != 0 || lv.expiry + l->skew < now) {
			if (lv.expiry != 0)
				dk_log_info("rotation lease of %s expired; removed", lv.holder);
			(void)hsm_lease_destroy(s, (*v)[i].obj);
			(*v)[i].obj = 0;
			continue;
		}
		if (lv.id < *min_id)
			*min_id = lv.id;
		if (lv.id == l->id) {
			(*mine)++;
			continue;
		}
		if ((*others)++ == 0) {
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

int
rot_lease_take(struct rot_lease *l, struct hsm_session *s, int *held)
{
	struct hsm_lease *v = NULL;
	size_t n = 0, others, mine;
	unsigned long obj = 0;
	uint64_t t0 = dk_now_us(), min_id;
	struct timespec ts;
	int r;

	*held = 0;
	l->taken = 0;
	l->other[0] = '\0';
	l->other_expiry = 0;
	if ((r = lease_scan(l, s, &v, &n, &others, &mine, &min_id)) != 0)
		goto out;
	if (others > 0)
		goto out; /* held by another (or another is deciding): not this time */
	if (mine > 0) {
		/* Renew: the new object first, then the old ones, so one always exists. */
		if ((r = lease_create(l, s, &obj)) != 0)
			goto out;
		lease_drop_mine(l, s, v, n, obj);
		*held = 1;
		goto out;
	}
	if ((r = lease_create(l, s, &obj)) != 0)
		goto out;
	if (dk_now_us() - t0 > (uint64_t)l->create_ms * 1000u) {
		/* Too slow for the settle time to cover us: back off, try at the next step. */
		r = hsm_lease_destroy(s, obj);
		goto out;
	}
	ts.tv_sec = l->settle_ms / 1000;
	ts.tv_nsec = (long)(l->settle_ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0)
		;
	free(v);
	v = NULL;
	if ((r = lease_scan(l, s, &v, &n, &others, &mine, &min_id)) != 0) {
		(void)hsm_lease_destroy(s, obj);
		goto out;
	}
	if (mine > 0 && min_id == l->id) {
		*held = 1;
		l->taken = 1;
		goto out;
	}
	r = hsm_lease_destroy(s, obj);
out:
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
