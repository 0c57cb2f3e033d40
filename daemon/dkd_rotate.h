/*
 * dkd_rotate.h - the rotation timer of dkimkeepd: every step_interval a
 * helper thread runs the step of rotate/ over the daemon's tokens (never
 * the loop thread: tokens and DNS may block), logs, audits and notifies
 * what it did, and asks for a reload of the key rings when the keys in the
 * tokens changed (by this step, another daemon or an operator).  The
 * reload swaps the rings atomically: signing never pauses.
 */
#ifndef DKD_ROTATE_H
#define DKD_ROTATE_H

#include "daemon/dkd_tokens.h"

/*
 * Called by the loop about every second (cheap): starts a step on a
 * helper thread when step_interval has passed since the last one and none
 * is running.  reload(arg) is called from that thread when the rings
 * should be read again.
 */
void dkd_rotate_tick(struct dkd_tokens *tokens, void (*reload)(void *), void *arg);

/* 1 while a step is running (the loop waits for it at exit). */
int dkd_rotate_busy(void);
/* 1 while the running step may hold a session on token token_index (dkd_token.index). */
int dkd_rotate_uses(size_t token_index);

#endif /* DKD_ROTATE_H */
