/*
 * dkd_outbox.h - finished jobs on their way back to the event loop: any
 * thread puts, the loop takes them all at once.  The loop is woken once
 * per batch (when the list goes from empty to non-empty).
 */
#ifndef DKD_OUTBOX_H
#define DKD_OUTBOX_H

#include "daemon/dkd_job.h"

struct dkd_outbox;

/* wake(arg) is called from the putting thread; it must be thread-safe (an eventfd write). */
int dkd_outbox_new(void (*wake)(void *), void *arg, struct dkd_outbox **out);
/* Append a list of jobs linked by next (one job is a list of one). */
void dkd_outbox_put(struct dkd_outbox *o, struct dkd_job *list);
/* Take every job (oldest first), or NULL. */
struct dkd_job *dkd_outbox_take(struct dkd_outbox *o);
/* Free the outbox and the jobs still in it. */
void dkd_outbox_free(struct dkd_outbox *o);

#endif /* DKD_OUTBOX_H */
