/*
 * dkd_privs.c - dropping root for [daemon] user (docs/operator.md,
 * "Running as its own user").
 *
 * Root is needed only to bind the socket where root put its directory and
 * to read PIN files that only root may read.  After that the daemon keeps
 * its logged-in token sessions and needs no PIN again (a refused or locked
 * PIN is never retried), so a compromised dkimkeepd holds a signing session
 * for as long as it runs, but never the PIN that would outlive it.
 */
#include <sys/prctl.h>
#include <sys/types.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "daemon/dkd_privs.h"
#include "hsm/hsm.h"

#define PWBUF_MAX (1024 * 1024)

struct privs_user {
	char name[256];
	uid_t uid;
	gid_t gid;
};

/* The passwd entry of user, given by name or number. */
static int
privs_lookup(const char *user, const char *conf_path, struct privs_user *out)
{
	struct passwd pw, *pwp = NULL;
	size_t len = 4096;
	char *buf = NULL, *nb, *end;
	unsigned long n = 0;
	int e, r, numeric = isdigit((unsigned char)user[0]);

	if (numeric) {
		errno = 0;
		n = strtoul(user, &end, 10);
		if (errno != 0 || *end != '\0' || n >= (uid_t)-1) {
			r = dk_err_set(DK_ERR_CONFIG,
			    "%s: [daemon] user = %s is not a user name or uid", conf_path, user);
			goto out;
		}
	}
	for (;;) {
		if ((nb = realloc(buf, len)) == NULL) {
			r = DK_ERR_NOMEM;
			goto out;
		}
		buf = nb;
		e = numeric ? getpwuid_r((uid_t)n, &pw, buf, len, &pwp)
		            : getpwnam_r(user, &pw, buf, len, &pwp);
		if (e != ERANGE || len >= PWBUF_MAX)
			break;
		len *= 2;
	}
	if (pwp == NULL || strlen(pwp->pw_name) >= sizeof(out->name)) {
		r = dk_err_set(DK_ERR_CONFIG,
		    "%s: [daemon] user = %s: no such user in the passwd database; create it "
		    "(systemd-sysusers dist/systemd/sysusers.d/dkimkeep.conf) or fix the name",
		    conf_path, user);
		goto out;
	}
	memcpy(out->name, pwp->pw_name, strlen(pwp->pw_name) + 1);
	out->uid = pwp->pw_uid;
	out->gid = pwp->pw_gid;
	r = 0;
out:
	free(buf);
	return r;
}

/* How many dkimkeep keys of each open token this process can see; -1: not known. */
static void
privs_count_keys(const struct dkd_tokens *tokens, long *counts)
{
	struct hsm_session *s;
	struct hsm_key *keys;
	size_t i, n;

	for (i = 0; i < tokens->n; i++) {
		counts[i] = -1;
		if (tokens->v[i].token == NULL || !atomic_load(&tokens->v[i].up) ||
		    hsm_session_open(tokens->v[i].token, &s) != 0)
			continue;
		keys = NULL;
		if (hsm_key_list(s, &keys, &n) == 0)
			counts[i] = (long)n;
		free(keys);
		hsm_session_close(s);
	}
}

/*
 * A software token keeps its objects in files: ones the new user cannot read
 * are simply not there any more, and the rings would come up empty with
 * advice to generate keys.  Say what is wrong instead.
 */
static int
privs_check_tokens(const struct dkd_tokens *tokens, const long *before, const long *after,
    const struct privs_user *u)
{
	size_t i;

	for (i = 0; i < tokens->n; i++) {
		if (before[i] <= 0 || after[i] >= before[i])
			continue;
		return dk_err_set(DK_ERR_PERM,
		    "token \"%s\": user %s sees %ld of its %ld keys after dropping root; make "
		    "the token's files readable and writable by %s (SoftHSM: add it to group "
		    "softhsm, or chown -R %s the tokendir of softhsm2.conf); see "
		    "docs/operator.md, \"Running as its own user\"",
		    tokens->v[i].name, u->name, after[i] < 0 ? 0 : after[i], before[i], u->name,
		    u->name);
	}
	return 0;
}

/* Become u for good: groups first, then gid, then uid; prove root is gone. */
static int
privs_switch(const struct privs_user *u)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (initgroups(u->name, u->gid) != 0)
		return dk_err_set(DK_ERR_PERM, "initgroups(%s, %u) failed: %s", u->name,
		    (unsigned)u->gid, strerror(errno));
	if (setresgid(u->gid, u->gid, u->gid) != 0)
		return dk_err_set(
		    DK_ERR_PERM, "setresgid(%u) failed: %s", (unsigned)u->gid, strerror(errno));
	if (setresuid(u->uid, u->uid, u->uid) != 0)
		return dk_err_set(
		    DK_ERR_PERM, "setresuid(%u) failed: %s", (unsigned)u->uid, strerror(errno));
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != u->uid ||
	    eu != u->uid || su != u->uid || rg != u->gid || eg != u->gid || sg != u->gid)
		return dk_err_set(DK_ERR_PERM, "the uid/gid did not change to %u/%u as asked",
		    (unsigned)u->uid, (unsigned)u->gid);
	/* A saved root uid would let a compromised daemon take root back. */
	if (u->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		return dk_err_set(
		    DK_ERR_PERM, "root could be regained after switching to %s", u->name);
	return 0;
}

int
dkd_privs_drop(const char *user, const char *conf_path, const struct dkd_tokens *tokens)
{
	struct privs_user u;
	long *counts;
	int r;

	if (geteuid() != 0) {
		if (user != NULL && (r = privs_lookup(user, conf_path, &u)) == 0 &&
		    u.uid != geteuid())
			dk_log_warn("started as uid %u, not root: cannot switch to user \"%s\"; "
			            "running as uid %u",
			    (unsigned)geteuid(), user, (unsigned)geteuid());
	} else if (user == NULL) {
		dk_log_warn("WARNING: dkimkeepd runs as root: a flaw in it would give root; add "
		            "\"user = dkimkeep\" to [daemon] in %s (see docs/operator.md, "
		            "\"Running as its own user\")",
		    conf_path);
	} else {
		if ((r = privs_lookup(user, conf_path, &u)) != 0)
			return r;
		if (u.uid == 0)
			dk_log_warn("WARNING: [daemon] user = %s in %s is root; name an "
			            "unprivileged user",
			    user, conf_path);
		if ((counts = calloc(2 * (tokens->n + 1), sizeof(*counts))) == NULL)
			return DK_ERR_NOMEM;
		privs_count_keys(tokens, counts);
		if ((r = privs_switch(&u)) == 0) {
			privs_count_keys(tokens, counts + tokens->n);
			r = privs_check_tokens(tokens, counts, counts + tokens->n, &u);
		}
		free(counts);
		if (r != 0)
			return r;
		dk_log_notice("running as user %s (uid %u, gid %u)", u.name, (unsigned)u.uid,
		    (unsigned)u.gid);
	}
	/* No exec (notify_command, publish_command) can gain privileges from here on. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return dk_err_set(
		    DK_ERR_PERM, "prctl(PR_SET_NO_NEW_PRIVS) failed: %s", strerror(errno));
	/* The set-id calls reset the flag: no core dumps or ptrace of session state. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return dk_err_set(
		    DK_ERR_PERM, "prctl(PR_SET_DUMPABLE) failed: %s", strerror(errno));
	return 0;
}
