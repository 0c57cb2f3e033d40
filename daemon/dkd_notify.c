/*
 * dkd_notify.c - running notify_command for operator-visible events.
 */
#include <sys/wait.h>
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "daemon/dkd_notify.h"

extern char **environ;

#define NOTIFY_RUNNING_MAX 64 /* commands not yet reaped; more are reaped when they end */

/* protects notify_cmd and notify_pids */
static pthread_mutex_t notify_lock = PTHREAD_MUTEX_INITIALIZER;
static char *notify_cmd;
/*
 * Only our own children are reaped: a waitpid(-1) would also take the
 * exit status of a publish_command that rotate/ is waiting for.
 */
static pid_t notify_pids[NOTIFY_RUNNING_MAX];

int
dkd_notify_init(const char *command)
{
	char *c = NULL;

	if (command != NULL && (c = strdup(command)) == NULL)
		return DK_ERR_NOMEM;
	pthread_mutex_lock(&notify_lock);
	free(notify_cmd);
	notify_cmd = c;
	pthread_mutex_unlock(&notify_lock);
	return 0;
}

void
dkd_notify(const char *event, const char *subject, const char *text)
{
	char *argv[5];
	size_t i = 0;
	pid_t pid;
	int r;

	pthread_mutex_lock(&notify_lock);
	if (notify_cmd == NULL) {
		pthread_mutex_unlock(&notify_lock);
		return;
	}
	argv[0] = notify_cmd;
	argv[1] = (char *)(uintptr_t)event;
	argv[2] = (char *)(uintptr_t)subject;
	argv[3] = (char *)(uintptr_t)text;
	argv[4] = NULL;
	r = posix_spawn(&pid, notify_cmd, NULL, NULL, argv, environ);
	if (r != 0)
		dk_log_warn("notify_command %s cannot be started: %s; check [dns] notify_command",
		    notify_cmd, strerror(r));
	for (i = 0; r == 0 && i < NOTIFY_RUNNING_MAX; i++) {
		if (notify_pids[i] == 0) {
			notify_pids[i] = pid;
			break;
		}
	}
	pthread_mutex_unlock(&notify_lock);
	if (r == 0 && i == NOTIFY_RUNNING_MAX)
		(void)waitpid(pid, NULL, 0); /* no room to remember it: wait for this one now */
}

void
dkd_notify_reap(void)
{
	size_t i;
	int status;

	pthread_mutex_lock(&notify_lock);
	for (i = 0; i < NOTIFY_RUNNING_MAX; i++) {
		if (notify_pids[i] != 0 && waitpid(notify_pids[i], &status, WNOHANG) != 0)
			notify_pids[i] = 0;
	}
	pthread_mutex_unlock(&notify_lock);
}
