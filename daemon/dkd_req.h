/*
 * dkd_req.h - checking one SignRequest from the wire (dkd_req.c).
 */
#ifndef DKD_REQ_H
#define DKD_REQ_H

#include <stddef.h>

#include "daemon/dkd_job.h"
#include "proto/dkimkeep.pb-c.h"

/*
 * Check every field of sr against its limit and fill the job's "in" part
 * (domain, selector, identity, algorithms, times, header list, header
 * section, body or body hash).  On DK_ERR_INVALID text (tl bytes) says
 * what is wrong; DK_ERR_NOMEM.  What the job owns (headers, header_section,
 * body) is the caller's to free, also on error (dkd_job_free()).
 */
int dkd_req_fill(const Dkimkeep__V1__SignRequest *sr, struct dkd_job *job, char *text, size_t tl);

#endif /* DKD_REQ_H */
