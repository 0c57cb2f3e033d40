/*
 * dk_time.c - durations, RFC 3339 times and clocks.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dk_err.h"
#include "common/dk_time.h"

#define DURATION_MAX (10LL * 366 * 86400)

int
dk_duration_parse(const char *s, int64_t *secs)
{
	char *end;
	long long v;
	int64_t mult = 1;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return DK_ERR_INVALID;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || v < 0)
		return DK_ERR_INVALID;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		return DK_ERR_INVALID;
	}
	if (*end != '\0' && end[1] != '\0')
		return DK_ERR_INVALID;
	if (v > DURATION_MAX / mult)
		return DK_ERR_INVALID;
	*secs = (int64_t)v * mult;
	return 0;
}

void
dk_time_rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		if (len > 0)
			buf[0] = '\0';
	}
}

int
dk_time_parse(const char *s, time_t *t)
{
	struct tm tm;
	const char *end;
	char *e;
	long long v;

	if (s == NULL || s[0] == '\0')
		return DK_ERR_INVALID;
	if (strchr(s, '-') == NULL) {
		errno = 0;
		v = strtoll(s, &e, 10);
		if (errno != 0 || *e != '\0' || v < 0)
			return DK_ERR_INVALID;
		*t = (time_t)v;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d", &tm);
	}
	if (end == NULL || (*end != '\0' && strcmp(end, "Z") != 0))
		return DK_ERR_INVALID;
	*t = timegm(&tm);
	return 0;
}

uint64_t
dk_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
