/*
 * bench_proc.h - what dkimkeep-bench learns about the daemon's process:
 * its pid (from the socket's peer credentials), its memory, CPU time and
 * context switches (from /proc, when it runs as the same user or
 * /proc is readable).
 */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdint.h>
#include <sys/types.h>

struct bench_proc_sample {
	int ok;           /* 0: /proc could not be read */
	uint64_t cpu_us;  /* user + system time of all threads */
	uint64_t ctxsw;   /* voluntary + involuntary context switches, all threads */
	uint64_t rss_kib; /* VmRSS */
	uint64_t hwm_kib; /* VmHWM: the peak RSS */
	unsigned threads;
};

/*
 * The pid of the process listening on the Unix socket at path (SO_PEERCRED
 * of a fresh connection, closed again).  DK_ERR_UNAVAILABLE with detail
 * when the socket cannot be reached.
 */
int bench_proc_daemon_pid(const char *path, pid_t *pid);

/* Sample pid; s->ok is 0 when its /proc entries cannot be read. */
void bench_proc_sample(pid_t pid, struct bench_proc_sample *s);

/* CPU time (user + system) of this process so far, in microseconds. */
uint64_t bench_proc_self_cpu_us(void);

#endif /* BENCH_PROC_H */
