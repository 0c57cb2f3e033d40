/*
 * bench_proc.c - the daemon's pid, memory, CPU time and context switches.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/bench_proc.h"
#include "common/dk_err.h"

int
bench_proc_daemon_pid(const char *path, pid_t *pid)
{
	struct sockaddr_un sun;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = -1, r;

	*pid = 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		r = dk_err_set(DK_ERR_INVALID, "socket path %s is too long", path);
		goto out;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		r = dk_err_set(
		    DK_ERR_UNAVAILABLE, "cannot reach dkimkeepd at %s: %s", path, strerror(errno));
		goto out;
	}
	*pid = cred.pid;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/* utime + stime of one /proc/.../stat file, in clock ticks; 0 when unreadable. */
static int
proc_stat_ticks(const char *path, uint64_t *ticks)
{
	char buf[1024], *p;
	unsigned long long ut, st;
	size_t n;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: fields start after the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	*ticks = ut + st;
	return 0;
}

/* The value of "key:" in a /proc status file (first number on the line). */
static int
proc_status_values(const char *path, const char *const *keys, uint64_t *vals, size_t n)
{
	char line[256];
	unsigned long long v;
	size_t i, kl;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		for (i = 0; i < n; i++) {
			kl = strlen(keys[i]);
			if (strncmp(line, keys[i], kl) == 0 && line[kl] == ':' &&
			    sscanf(line + kl + 1, "%llu", &v) == 1)
				vals[i] = v;
		}
	}
	fclose(f);
	return 0;
}

void
bench_proc_sample(pid_t pid, struct bench_proc_sample *s)
{
	static const char *const mem_keys[] = {"VmRSS", "VmHWM"};
	static const char *const sw_keys[] = {
	    "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"};
	char path[128];
	uint64_t ticks = 0, mem[2] = {0, 0}, sw[2];
	long hz = sysconf(_SC_CLK_TCK);
	struct dirent *de;
	DIR *d;

	memset(s, 0, sizeof(s[0]));
	if (pid <= 0 || hz <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (proc_stat_ticks(path, &ticks) != 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (proc_status_values(path, mem_keys, mem, 2) != 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return;
	/* Context switches are counted per thread: add up the tasks. */
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.20s/status", (int)pid, de->d_name);
		sw[0] = sw[1] = 0;
		if (proc_status_values(path, sw_keys, sw, 2) == 0) {
			s->ctxsw += sw[0] + sw[1];
			s->threads++;
		}
	}
	closedir(d);
	s->cpu_us = ticks * 1000000u / (uint64_t)hz;
	s->rss_kib = mem[0];
	s->hwm_kib = mem[1];
	s->ok = 1;
}

uint64_t
bench_proc_self_cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}
