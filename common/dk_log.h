/*
 * dk_log.h - logging to stderr or syslog.
 *
 * Programs call dk_log_init() once; lines go to stderr (foreground, CLI) or
 * to syslog (daemon).  Never log a PIN, a key or a message body.
 */
#ifndef DK_LOG_H
#define DK_LOG_H

#include <syslog.h>

/* ident: program name; to_syslog: 0 for stderr; debug: log LOG_DEBUG lines. */
void dk_log_init(const char *ident, int to_syslog, int debug);
void dk_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define dk_log_err(...)    dk_log(LOG_ERR, __VA_ARGS__)
#define dk_log_warn(...)   dk_log(LOG_WARNING, __VA_ARGS__)
#define dk_log_notice(...) dk_log(LOG_NOTICE, __VA_ARGS__)
#define dk_log_info(...)   dk_log(LOG_INFO, __VA_ARGS__)
#define dk_log_debug(...)  dk_log(LOG_DEBUG, __VA_ARGS__)

#endif /* DK_LOG_H */
