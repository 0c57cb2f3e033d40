/*
 * dk_log.c - logging to stderr or syslog.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "common/dk_log.h"

static const char *log_ident = "dkimkeep";
static int log_syslog;
static int log_debug;

void
dk_log_init(const char *ident, int to_syslog, int debug)
{
	log_ident = ident;
	log_syslog = to_syslog;
	log_debug = debug;
	if (to_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

static const char *
log_level(int prio)
{
	switch (prio) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void
dk_log(int prio, const char *fmt, ...)
{
	va_list ap;
	char line[2048];

	if (prio == LOG_DEBUG && !log_debug)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(prio, "%s", line);
		return;
	}
	fprintf(stderr, "%s: %s: %s\n", log_ident, log_level(prio), line);
}
