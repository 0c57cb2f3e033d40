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

static pthread_mutex_t notify_lock = PTHREAD_MUTEX_INITIALIZER; /* protects notify_cmd */
static char *notify_cmd;

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
	pthread_mutex_unlock(&notify_lock);
}

void
dkd_notify_reap(void)
{
	int status;

	while (waitpid(-1, &status, WNOHANG) > 0)
		;
}
