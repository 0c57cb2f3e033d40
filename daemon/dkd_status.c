/*
 * dkd_status.c - the answer to a status request, from the loop's view:
 * tokens up or down, which slot signs for each ring, queue and counters.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/dk_err.h"
#include "daemon/dkd_keyset.h"
#include "daemon/dkd_loop.h"

static const char *const counter_names[DKD_CNT_MAX] = {
    [DKD_CNT_OK] = "OK",
    [DKD_CNT_BAD_REQUEST] = "BAD_REQUEST",
    [DKD_CNT_BAD_MESSAGE] = "BAD_MESSAGE",
    [DKD_CNT_NOT_AUTHORIZED] = "NOT_AUTHORIZED",
    [DKD_CNT_UNKNOWN_DOMAIN] = "UNKNOWN_DOMAIN",
    [DKD_CNT_NO_KEY] = "NO_KEY",
    [DKD_CNT_BUSY] = "BUSY",
    [DKD_CNT_RATE_LIMITED] = "RATE_LIMITED",
    [DKD_CNT_TOKEN_UNAVAILABLE] = "TOKEN_UNAVAILABLE",
    [DKD_CNT_AUDIT_UNAVAILABLE] = "AUDIT_UNAVAILABLE",
    [DKD_CNT_INTERNAL] = "INTERNAL",
};

/* Everything a status answer points to, freed in one go. */
struct status_mem {
	Dkimkeep__V1__StatusResponse sr;
	Dkimkeep__V1__TokenStatus *tokens;
	Dkimkeep__V1__TokenStatus **tokenp;
	char (*errors)[256];
	Dkimkeep__V1__RingStatus *rings;
	Dkimkeep__V1__RingStatus **ringp;
	Dkimkeep__V1__StatusResponse__RequestsEntry req[DKD_CNT_MAX];
	Dkimkeep__V1__StatusResponse__RequestsEntry *reqp[DKD_CNT_MAX];
	struct dkd_keyset *ks;
};

static void
status_tokens(struct dkd_loop *lp, struct status_mem *m)
{
	struct dkd_token *t;
	size_t i;

	for (i = 0; i < lp->tokens->n; i++) {
		t = &lp->tokens->v[i];
		dkimkeep__v1__token_status__init(&m->tokens[i]);
		m->tokens[i].name = t->name;
		m->tokens[i].label = t->label;
		m->tokens[i].up = atomic_load(&t->up);
		m->tokens[i].since = atomic_load(&t->since);
		m->tokens[i].errors = atomic_load(&t->errors);
		dkd_token_last_error(t, m->errors[i], sizeof(m->errors[i]));
		m->tokens[i].last_error = m->errors[i];
		m->tokenp[i] = &m->tokens[i];
	}
	m->sr.n_tokens = lp->tokens->n;
	m->sr.tokens = m->tokenp;
}

static void
status_rings(struct status_mem *m)
{
	const struct dkd_ring *ring;
	const struct dkd_key *k;
	Dkimkeep__V1__RingStatus *rs;
	size_t i;

	for (i = 0; m->ks != NULL && i < m->ks->nrings; i++) {
		ring = &m->ks->rings[i];
		rs = &m->rings[i];
		dkimkeep__v1__ring_status__init(rs);
		rs->domain = ring->dom->name;
		rs->algorithm = ring->alg == DKIM_ALG_RSA_SHA256
		                    ? DKIMKEEP__V1__ALGORITHM__RSA_SHA256
		                    : DKIMKEEP__V1__ALGORITHM__ED25519_SHA256;
		k = NULL;
		if (ring->active != NULL && atomic_load(&ring->active->tok->up))
			k = ring->active;
		else if (ring->standby != NULL && atomic_load(&ring->standby->tok->up))
			k = ring->standby;
		rs->slot = (char *)(uintptr_t)(k != NULL ? k->hk.meta.slot : "none");
		if (k != NULL) {
			rs->selector = (char *)(uintptr_t)k->hk.meta.selector;
			rs->key_id = (char *)(uintptr_t)k->hk.id_hex;
		}
		m->ringp[i] = rs;
	}
	m->sr.n_rings = m->ks != NULL ? m->ks->nrings : 0;
	m->sr.rings = m->ringp;
}

int
dkd_status_fill(struct dkd_loop *lp, Dkimkeep__V1__Response *resp)
{
	struct status_mem *m;
	size_t nt = lp->tokens->n + 1, nr, i;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return DK_ERR_NOMEM;
	m->ks = dkd_keyset_acquire();
	nr = (m->ks != NULL ? m->ks->nrings : 0) + 1;
	m->tokens = calloc(nt, sizeof(*m->tokens));
	m->tokenp = calloc(nt, sizeof(*m->tokenp));
	m->errors = calloc(nt, sizeof(*m->errors));
	m->rings = calloc(nr, sizeof(*m->rings));
	m->ringp = calloc(nr, sizeof(*m->ringp));
	dkimkeep__v1__status_response__init(&m->sr);
	resp->kind_case = DKIMKEEP__V1__RESPONSE__KIND_STATUS_INFO;
	resp->status_info = &m->sr;
	if (m->tokens == NULL || m->tokenp == NULL || m->errors == NULL || m->rings == NULL ||
	    m->ringp == NULL) {
		dkd_status_clear(resp);
		return DK_ERR_NOMEM;
	}
	m->sr.version = (char *)(uintptr_t)DKIMKEEP_VERSION;
	m->sr.started = lp->started;
	m->sr.workers = (uint32_t)dkd_pool_workers(lp->pool);
	m->sr.queue_depth = (uint32_t)dkd_pool_depth(lp->pool);
	m->sr.queue_max = (uint32_t)lp->queue_max;
	m->sr.connections = (uint32_t)lp->connections;
	status_tokens(lp, m);
	status_rings(m);
	for (i = 0; i < DKD_CNT_MAX; i++) {
		dkimkeep__v1__status_response__requests_entry__init(&m->req[i]);
		m->req[i].key = (char *)(uintptr_t)counter_names[i];
		m->req[i].value = lp->counters[i];
		m->reqp[i] = &m->req[i];
	}
	m->sr.n_requests = DKD_CNT_MAX;
	m->sr.requests = m->reqp;
	return 0;
}

void
dkd_status_clear(Dkimkeep__V1__Response *resp)
{
	struct status_mem *m = (struct status_mem *)resp->status_info;

	if (m == NULL)
		return;
	dkd_keyset_release(m->ks);
	free(m->tokens);
	free(m->tokenp);
	free(m->errors);
	free(m->rings);
	free(m->ringp);
	free(m);
	resp->status_info = NULL;
	resp->kind_case = DKIMKEEP__V1__RESPONSE__KIND__NOT_SET;
}
