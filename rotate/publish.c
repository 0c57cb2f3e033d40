/*
 * publish.c - rfc2136 | command | manual: one record into DNS.
 */
#include <sys/wait.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "rotate/publish.h"
#include "rotate/rotate.h"

extern char **environ;

const char *
rot_pub_name(enum rot_pub act)
{
	switch (act) {
	case ROT_PUB_ADD:
		return "add";
	case ROT_PUB_REVOKE:
		return "revoke";
	default:
		return "delete";
	}
}

/* Wait for pid at most ROT_COMMAND_TIMEOUT_S; kill it past that. */
static int
command_wait(pid_t pid, const char *cmd, const char *name, int *status)
{
	struct timespec tick = {0, 20 * 1000 * 1000};
	time_t deadline = time(NULL) + ROT_COMMAND_TIMEOUT_S;
	pid_t w;

	for (;;) {
		w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			/* Reaped by someone else (a waitpid(-1) elsewhere): the outcome is unknown.
			 */
			return dk_err_set(DK_ERR_UNAVAILABLE,
			    "publish_command %s for %s: its exit status was lost (%s); DNS is "
			    "checked before the key is used",
			    cmd, name, strerror(errno));
		if (time(NULL) >= deadline) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, status, 0);
			return dk_err_set(DK_ERR_TIMEOUT,
			    "publish_command %s for %s ran longer than %d s and was killed", cmd,
			    name, ROT_COMMAND_TIMEOUT_S);
		}
		nanosleep(&tick, NULL);
	}
}

/* Run publish_command NAME VALUE ACTION and wait for it; exit 0 is success. */
static int
publish_command(const char *cmd, const char *name, const char *value, enum rot_pub act)
{
	char *argv[5];
	pid_t pid;
	int r, status = 0;

	argv[0] = (char *)(uintptr_t)cmd;
	argv[1] = (char *)(uintptr_t)name;
	argv[2] = (char *)(uintptr_t)value;
	argv[3] = (char *)(uintptr_t)rot_pub_name(act);
	argv[4] = NULL;
	if ((r = posix_spawn(&pid, cmd, NULL, NULL, argv, environ)) != 0)
		return dk_err_set(DK_ERR_UNAVAILABLE,
		    "publish_command %s cannot be started: %s; check [dns] publish_command=", cmd,
		    strerror(r));
	if ((r = command_wait(pid, cmd, name, &status)) != 0)
		return r;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return dk_err_set(DK_ERR_UNAVAILABLE, "publish_command %s %s ... %s exited %d", cmd,
		    name, rot_pub_name(act), WEXITSTATUS(status));
	return dk_err_set(DK_ERR_UNAVAILABLE,
	    "publish_command %s %s ... %s was killed by signal %d", cmd, name, rot_pub_name(act),
	    WTERMSIG(status));
}

int
rot_publish(const struct dk_conf *conf, const struct dk_conf_domain *ds, const char *name,
    const char *value, enum rot_pub act)
{
	switch (ds->dns_publish) {
	case DK_PUBLISH_RFC2136:
		return rot_dns_update(&conf->dns, name, value, act, (unsigned)conf->dns.ttl);
	case DK_PUBLISH_COMMAND:
		if (conf->dns.publish_command == NULL)
			return dk_err_set(
			    DK_ERR_CONFIG, "dns_publish = command needs publish_command= in [dns]");
		return publish_command(conf->dns.publish_command, name, value, act);
	default:
		return 0;
	}
}
