/*
 * hsm_store.c - the calls that add or remove token objects, kept coherent
 * between the processes of one host that share a SoftHSM token.
 *
 * SoftHSM's file store keeps, in each process, a view of the token
 * directory.  A process lists the directory again only when the token's
 * generation counter (a file beside the objects) moved since it last
 * looked.  Its own C_CreateObject or C_DestroyObject, however, sets its
 * counter to the new value without listing: every change other processes
 * made since its last listing then stays out of its view until yet another
 * process changes the token.  Seen: a "key step" that listed the rotation
 * lease objects without the object of another "key step" created a moment
 * before, so both took the lease and both destroyed the same key
 * (test_scaleout LeaseRace; docs/rotation.md, "A stale view of the token").
 *
 * So with a SoftHSM module every change goes through here: take an
 * exclusive flock(2) on the token directory (one lock for every process of
 * the host that uses it), search once (SoftHSM lists the directory if the
 * counter moved), make the change, let go.  No other dkimkeep process can
 * change the token between that listing and our change, so the counter
 * never hides one.  Other modules (an HSM, one p11-kit server for many
 * daemons) keep one store that every process sees whole: no lock.
 *
 * The lock is bounded: after STORE_WAIT_MS the change is made without it,
 * and said (a process hung in the token while it holds the lock must not
 * stop every other one).  A process that does not use dkimkeep (softhsm2-util,
 * pkcs11-tool) takes no lock: a change it makes at the same time as ours can
 * still be missed by us until the next change.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common/dk_log.h"
#include "hsm/hsm_int.h"

#define STORE_CONF_DEFAULT "/etc/softhsm/softhsm2.conf" /* SoftHSM's own default */
#define STORE_CONF_LINES   4096                         /* lines of it we read at most */
#define STORE_WAIT_MS      10000                        /* then go on without the lock */
#define STORE_POLL_MS      2

/* One section per process at a time: flock(2) does not tell our own threads apart. */
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;

/* directories.tokendir from SoftHSM's config (SOFTHSM2_CONF, as SoftHSM reads it); -1 if none. */
static int
softhsm_tokendir(char *dir, size_t len)
{
	const char *path = getenv("SOFTHSM2_CONF");
	static const char key[] = "directories.tokendir";
	char line[1024], *p, *e;
	FILE *f;
	int n, r = -1;

	if (path == NULL || path[0] == '\0')
		path = STORE_CONF_DEFAULT;
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	for (n = 0; n < STORE_CONF_LINES && fgets(line, sizeof(line), f) != NULL; n++) {
		p = line + strspn(line, " \t");
		if (strncmp(p, key, sizeof(key) - 1) != 0)
			continue;
		p += sizeof(key) - 1;
		p += strspn(p, " \t");
		if (*p++ != '=')
			continue;
		p += strspn(p, " \t");
		e = p + strcspn(p, "\r\n");
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e == p || (size_t)(e - p) >= len)
			continue;
		memcpy(dir, p, (size_t)(e - p));
		dir[e - p] = '\0';
		r = 0; /* the last one counts, as in SoftHSM */
	}
	(void)fclose(f);
	return r;
}

void
hsm_store_open(struct hsm_module *m)
{
	char dir[PATH_MAX];
	CK_INFO info;

	m->store_fd = -1;
	if (m->f->C_GetInfo(&info) != CKR_OK ||
	    memcmp(info.manufacturerID, "SoftHSM", strlen("SoftHSM")) != 0)
		return;
	/* Opened now, before dkimkeepd drops its privileges, and kept. */
	if (softhsm_tokendir(dir, sizeof(dir)) != 0 ||
	    (m->store_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		m->store_fd = -1;
		dk_log_warn(
		    "module %s is SoftHSM, but its token directory (directories.tokendir "
		    "in %s) cannot be opened: a change another process makes to a token "
		    "may stay unseen here (docs/rotation.md, \"A stale view of the token\")",
		    m->path,
		    getenv("SOFTHSM2_CONF") != NULL ? getenv("SOFTHSM2_CONF") : STORE_CONF_DEFAULT);
	}
}

void
hsm_store_close(struct hsm_module *m)
{
	if (m->store_fd >= 0)
		(void)close(m->store_fd);
	m->store_fd = -1;
}

/* Take the host's lock of the store behind s and bring our view up to date: 1 when held. */
static int
store_enter(struct hsm_session *s)
{
	struct hsm_module *m = s->t->m;
	struct timespec until;
	unsigned waited = 0;

	if (m->store_fd < 0)
		return 0;
	(void)clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += STORE_WAIT_MS / 1000;
	if (pthread_mutex_timedlock(&store_mu, &until) != 0)
		goto busy;
	while (flock(m->store_fd, LOCK_EX | LOCK_NB) != 0) {
		if ((errno != EWOULDBLOCK && errno != EINTR) || waited >= STORE_WAIT_MS) {
			pthread_mutex_unlock(&store_mu);
			goto busy;
		}
		nanosleep(&(struct timespec){0, STORE_POLL_MS * 1000000L}, NULL);
		waited += STORE_POLL_MS;
	}
	/* Any search makes SoftHSM list the directory again when the token changed. */
	if (m->f->C_FindObjectsInit(s->h, NULL, 0) == CKR_OK)
		(void)m->f->C_FindObjectsFinal(s->h);
	return 1;
busy:
	dk_log_warn("token \"%s\": the lock of its SoftHSM token directory was not free within "
	            "%d s (is another dkimkeep process hung in the token?); changing the token "
	            "without it",
	    s->t->label, STORE_WAIT_MS / 1000);
	return 0;
}

static void
store_leave(struct hsm_session *s, int held)
{
	if (!held)
		return;
	(void)flock(s->t->m->store_fd, LOCK_UN);
	pthread_mutex_unlock(&store_mu);
}

CK_RV
hsm_store_create(struct hsm_session *s, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *o)
{
	int held = store_enter(s);
	CK_RV rv = s->t->m->f->C_CreateObject(s->h, t, n, o);

	store_leave(s, held);
	return rv;
}

CK_RV
hsm_store_destroy(struct hsm_session *s, CK_OBJECT_HANDLE o)
{
	int held = store_enter(s);
	CK_RV rv = s->t->m->f->C_DestroyObject(s->h, o);

	store_leave(s, held);
	return rv;
}

CK_RV
hsm_store_generate(
    struct hsm_session *s, CK_MECHANISM *mech, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *o)
{
	int held = store_enter(s);
	CK_RV rv = s->t->m->f->C_GenerateKey(s->h, mech, t, n, o);

	store_leave(s, held);
	return rv;
}

CK_RV
hsm_store_generate_pair(struct hsm_session *s, CK_MECHANISM *mech, struct hsm_tmpl *pub,
    struct hsm_tmpl *priv, CK_OBJECT_HANDLE *hpub, CK_OBJECT_HANDLE *hpriv)
{
	int held = store_enter(s);
	CK_RV rv = s->t->m->f->C_GenerateKeyPair(
	    s->h, mech, pub->a, pub->n, priv->a, priv->n, hpub, hpriv);

	store_leave(s, held);
	return rv;
}
