/*
 * dkd_outbox.c - the hand-over of finished jobs to the loop.
 */
#include <pthread.h>
#include <stdlib.h>

#include "common/dk_err.h"
#include "daemon/dkd_outbox.h"

struct dkd_outbox {
	pthread_mutex_t lock; /* protects head and tail */
	struct dkd_job *head, *tail;
	void (*wake)(void *);
	void *arg;
};

int
dkd_outbox_new(void (*wake)(void *), void *arg, struct dkd_outbox **out)
{
	struct dkd_outbox *o;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return DK_ERR_NOMEM;
	pthread_mutex_init(&o->lock, NULL);
	o->wake = wake;
	o->arg = arg;
	*out = o;
	return 0;
}

void
dkd_outbox_put(struct dkd_outbox *o, struct dkd_job *list)
{
	struct dkd_job *last;
	int wake;

	if (list == NULL)
		return;
	for (last = list; last->next != NULL; last = last->next)
		;
	pthread_mutex_lock(&o->lock);
	wake = o->head == NULL;
	if (o->tail != NULL)
		o->tail->next = list;
	else
		o->head = list;
	o->tail = last;
	pthread_mutex_unlock(&o->lock);
	if (wake && o->wake != NULL)
		o->wake(o->arg);
}

struct dkd_job *
dkd_outbox_take(struct dkd_outbox *o)
{
	struct dkd_job *list;

	pthread_mutex_lock(&o->lock);
	list = o->head;
	o->head = o->tail = NULL;
	pthread_mutex_unlock(&o->lock);
	return list;
}

void
dkd_outbox_free(struct dkd_outbox *o)
{
	struct dkd_job *job, *next;

	if (o == NULL)
		return;
	for (job = dkd_outbox_take(o); job != NULL; job = next) {
		next = job->next;
		dkd_job_free(job);
	}
	pthread_mutex_destroy(&o->lock);
	free(o);
}
