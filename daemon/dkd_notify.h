/*
 * dkd_notify.h - telling operators: runs [dns] notify_command EVENT SUBJECT TEXT
 * without waiting for it (failover, recovery, rotation steps).
 */
#ifndef DKD_NOTIFY_H
#define DKD_NOTIFY_H

/* Set (or clear, with NULL) the command; called at start and on reload. */
int dkd_notify_init(const char *command);
/* Start the command for one event; failures are logged, never fatal. */
void dkd_notify(const char *event, const char *subject, const char *text);
/* Reap finished commands (call from the loop now and then). */
void dkd_notify_reap(void);

#endif /* DKD_NOTIFY_H */
