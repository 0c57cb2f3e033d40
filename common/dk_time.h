/*
 * dk_time.h - durations, RFC 3339 times and clocks.
 */
#ifndef DK_TIME_H
#define DK_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Parse a duration: a decimal number followed by s, m, h or d ("90d",
 * "1h", "30s"); a bare number is seconds.  DK_ERR_INVALID on anything else
 * or on overflow past ten years.
 */
int dk_duration_parse(const char *s, int64_t *secs);
/* Write t as RFC 3339 UTC ("2026-11-24T23:29:04Z") into buf (>= 21 bytes). */
void dk_time_rfc3339(time_t t, char *buf, size_t len);
/* Parse "YYYY-MM-DDTHH:MM:SSZ" (as written above) or a decimal UNIX time. */
int dk_time_parse(const char *s, time_t *t);
/* Monotonic clock in microseconds. */
uint64_t dk_now_us(void);

#endif /* DK_TIME_H */
