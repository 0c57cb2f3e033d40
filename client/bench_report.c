/*
 * bench_report.c - the results of dkimkeep-bench as text or JSON.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "client/bench_report.h"
#include "client/dkimkeep_client.h"
#include "common/dk_buf.h"
#include "common/dk_json.h"

static double
per_s(uint64_t n, double secs)
{
	return secs > 0 ? (double)n / secs : 0.0;
}

static double
bench_ratio(const struct bench_report *rp)
{
	double raw;

	if (rp->raw == NULL)
		return NAN;
	raw = per_s(rp->raw->sigs, rp->raw->elapsed);
	return raw > 0 ? per_s(rp->load->ok, rp->load->elapsed) / raw : NAN;
}

static double per_msg(uint64_t v, uint64_t msgs);

/* raw CPU per signature ÷ (daemon + client CPU per message): the ratio with every core busy. */
static double
bench_cpu_ratio(const struct bench_report *rp)
{
	const struct bench_load_result *l = rp->load;
	double raw, sock;

	if (rp->raw == NULL || !l->daemon_known || l->ok == 0 || rp->raw->sigs == 0)
		return NAN;
	raw = per_msg(rp->raw->cpu_us, rp->raw->sigs);
	sock = per_msg(l->daemon_cpu_us + l->self_cpu_us, l->ok);
	return sock > 0 ? raw / sock : NAN;
}

/* Daemon figures are known when /proc could be read at both ends of the window. */
static int
daemon_known(const struct bench_load_result *l)
{
	return l->daemon_known;
}

static double
per_msg(uint64_t v, uint64_t msgs)
{
	return msgs > 0 ? (double)v / (double)msgs : NAN;
}

static void
report_json_daemon(struct dk_json *j, const struct bench_report *rp)
{
	const struct bench_load_result *l = rp->load;

	dk_json_obj_open(j, "daemon");
	if (rp->daemon_pid > 0)
		dk_json_int(j, "pid", rp->daemon_pid);
	else
		dk_json_null(j, "pid");
	dk_json_uint(j, "connections", l->daemon_connections);
	if (daemon_known(l)) {
		dk_json_uint(j, "threads", l->d1.threads);
		dk_json_uint(j, "rss_kib", l->d1.rss_kib);
		dk_json_uint(j, "hwm_kib", l->d1.hwm_kib);
		dk_json_double(j, "cpu_us_per_msg", per_msg(l->daemon_cpu_us, l->ok));
		dk_json_double(j, "ctxsw_per_msg", per_msg(l->daemon_ctxsw, l->ok));
	}
	dk_json_obj_close(j);
}

static void
report_json_raw(struct dk_json *j, const struct bench_report *rp)
{
	const struct bench_raw_result *w = rp->raw;

	if (w == NULL) {
		dk_json_null(j, "raw_sigs");
		dk_json_null(j, "raw_sigs_per_s");
		dk_json_null(j, "raw_p50_us");
		dk_json_null(j, "raw_p99_us");
		dk_json_null(j, "raw_max_us");
		dk_json_null(j, "raw_errors");
		dk_json_null(j, "raw_cpu_us_per_sig");
		return;
	}
	dk_json_uint(j, "raw_sigs", w->sigs);
	dk_json_double(j, "raw_sigs_per_s", per_s(w->sigs, w->elapsed));
	dk_json_uint(j, "raw_p50_us", bench_hist_pct(&w->hist, 50));
	dk_json_uint(j, "raw_p99_us", bench_hist_pct(&w->hist, 99));
	dk_json_uint(j, "raw_max_us", w->hist.max);
	dk_json_uint(j, "raw_errors", w->errors);
	dk_json_double(j, "raw_cpu_us_per_sig", per_msg(w->cpu_us, w->sigs));
	dk_json_obj_open(j, "key");
	dk_json_str(j, "token", w->token);
	dk_json_str(j, "selector", w->selector);
	dk_json_str(j, "key_id", w->key_id);
	dk_json_uint(j, "bits", w->bits);
	dk_json_obj_close(j);
}

int
bench_report_json(const struct bench_report *rp)
{
	const struct bench_opts *o = rp->o;
	const struct bench_load_result *l = rp->load;
	struct dk_buf b;
	struct dk_json j;
	int s, r;

	dk_buf_init(&b, 1024 * 1024);
	dk_json_init(&j, &b);
	dk_json_obj_open(&j, NULL);
	dk_json_str(&j, "version", DKIMKEEP_VERSION);
	dk_json_str(&j, "alg", dkim_alg_name(o->alg));
	dk_json_uint(&j, "message_bytes", rp->message_bytes);
	dk_json_uint(&j, "clients", o->clients);
	dk_json_uint(&j, "inflight", o->inflight);
	dk_json_uint(&j, "workers", rp->workers);
	dk_json_double(&j, "seconds", l->elapsed);
	dk_json_double(&j, "warmup", o->warmup);
	dk_json_uint(&j, "rounds", o->rounds);
	dk_json_uint(&j, "domains", o->domains);
	dk_json_uint(&j, "connections", o->idle);
	dk_json_uint(&j, "msgs", l->ok);
	dk_json_double(&j, "msgs_per_s", per_s(l->ok, l->elapsed));
	dk_json_uint(&j, "p50_us", bench_hist_pct(&l->hist, 50));
	dk_json_uint(&j, "p90_us", bench_hist_pct(&l->hist, 90));
	dk_json_uint(&j, "p99_us", bench_hist_pct(&l->hist, 99));
	dk_json_uint(&j, "max_us", l->hist.max);
	dk_json_double(&j, "mean_us", l->hist.count ? (double)l->hist.sum / l->hist.count : 0);
	dk_json_uint(&j, "errors", l->errors + l->io_errors);
	dk_json_obj_open(&j, "errors_by_status");
	for (s = 0; s <= DKC_INTERNAL; s++) {
		if (l->by_status[s] > 0)
			dk_json_uint(&j, dkc_status_name(s), l->by_status[s]);
	}
	if (l->io_errors > 0)
		dk_json_uint(&j, "IO", l->io_errors);
	dk_json_obj_close(&j);
	dk_json_uint(&j, "raw_threads", o->raw_threads);
	report_json_raw(&j, rp);
	dk_json_double(&j, "ratio", bench_ratio(rp));
	dk_json_double(&j, "cpu_ratio", bench_cpu_ratio(rp));
	dk_json_double(&j, "client_cpu_us_per_msg", per_msg(l->self_cpu_us, l->ok));
	report_json_daemon(&j, rp);
	dk_json_obj_close(&j);
	if ((r = dk_json_finish(&j)) == 0)
		printf("%s\n", dk_buf_str(&b));
	dk_buf_free(&b);
	return r;
}

void
bench_report_text(const struct bench_report *rp)
{
	const struct bench_opts *o = rp->o;
	const struct bench_load_result *l = rp->load;
	const struct bench_raw_result *w = rp->raw;
	const char *sep = " (";
	int s;

	printf("dkimkeep-bench %s: %s, %zu-byte message, %u client%s x %u in flight, "
	       "%u domain%s, %u idle connection%s, %.1f s measured in %u round%s "
	       "(%.1f s warm-up each)\n",
	    DKIMKEEP_VERSION, dkim_alg_name(o->alg), rp->message_bytes, o->clients,
	    o->clients == 1 ? "" : "s", o->inflight, o->domains, o->domains == 1 ? "" : "s",
	    o->idle, o->idle == 1 ? "" : "s", l->elapsed, o->rounds, o->rounds == 1 ? "" : "s",
	    o->warmup);
	printf("socket  %9.1f msgs/s  p50=%llu p90=%llu p99=%llu max=%llu us  errors=%llu",
	    per_s(l->ok, l->elapsed), (unsigned long long)bench_hist_pct(&l->hist, 50),
	    (unsigned long long)bench_hist_pct(&l->hist, 90),
	    (unsigned long long)bench_hist_pct(&l->hist, 99), (unsigned long long)l->hist.max,
	    (unsigned long long)(l->errors + l->io_errors));
	if (l->errors + l->io_errors > 0) {
		for (s = 0; s <= DKC_INTERNAL; s++) {
			if (l->by_status[s] > 0)
				printf("%s%s=%llu", sep, dkc_status_name(s),
				    (unsigned long long)l->by_status[s]);
			sep = l->by_status[s] > 0 ? " " : sep;
		}
		if (l->io_errors > 0)
			printf("%sIO=%llu", sep, (unsigned long long)l->io_errors);
		printf(")");
	}
	printf("\n");
	printf("daemon  %u workers, %u connections", rp->workers, l->daemon_connections);
	if (daemon_known(l) && l->ok > 0)
		printf(", %u threads, %.0f us CPU/msg, %.2f context switches/msg, "
		       "rss %.1f MiB (peak %.1f MiB)",
		    l->d1.threads, per_msg(l->daemon_cpu_us, l->ok),
		    per_msg(l->daemon_ctxsw, l->ok), (double)l->d1.rss_kib / 1024.0,
		    (double)l->d1.hwm_kib / 1024.0);
	else if (daemon_known(l))
		printf(", %u threads, rss %.1f MiB (peak %.1f MiB)", l->d1.threads,
		    (double)l->d1.rss_kib / 1024.0, (double)l->d1.hwm_kib / 1024.0);
	if (l->ok > 0)
		printf("; bench client %.0f us CPU/msg", per_msg(l->self_cpu_us, l->ok));
	printf("\n");
	if (w != NULL)
		printf("raw     %9.1f sigs/s  p50=%llu p99=%llu max=%llu us  errors=%llu  "
		       "(%u session%s, %.0f us CPU/sig, key %s, selector %s, token \"%s\")\n",
		    per_s(w->sigs, w->elapsed), (unsigned long long)bench_hist_pct(&w->hist, 50),
		    (unsigned long long)bench_hist_pct(&w->hist, 99),
		    (unsigned long long)w->hist.max, (unsigned long long)w->errors, o->raw_threads,
		    o->raw_threads == 1 ? "" : "s", per_msg(w->cpu_us, w->sigs), w->key_id,
		    w->selector, w->token);
	if (isfinite(bench_ratio(rp)))
		printf("ratio=%.3f", bench_ratio(rp));
	else
		printf("ratio=none");
	if (isfinite(bench_cpu_ratio(rp)))
		printf("  cpu_ratio=%.3f", bench_cpu_ratio(rp));
	printf("\n");
}
