#!/usr/bin/python3
"""What the audit log costs: dkimkeep-bench against one dkimkeepd with the
audit log off and on, in pairs of short runs close in time, on the same
token and keys.

    tests/bench/audit_bench.py --build build --pairs 12 --seconds 4

Each pair runs the daemon once without and once with the audit log (the
order alternates), so both see about the same background load; the cost is
1 - the median of the pairs' rate ratios (on / off), with the quartiles.
Also reported: the daemon's CPU per request (dkimkeep-bench's own figure),
the audit threads' part of it (the writer dkd-audit and the syncer dkd-audit-sync), and latency.

With the log on, every request is one record (its Message-ID hashed with
the hour's key), written in batches with one fdatasync each, before the
answer goes out.  The log goes to --log-dir (default: a temp dir); put it on
the disk the real log would be on, not on a tmpfs, or fdatasync costs
nothing.  No timing is asserted: this is a measuring tool for docs/audit.md.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
sys.path.insert(0, HERE)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """user+system CPU seconds of a process, and of its thread named dkd-audit."""
    def stat(path):
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    total, audit = stat(f"/proc/{pid}/stat"), 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip().startswith("dkd-audit"):
                    audit += stat(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            pass
    return total, audit


def quartiles(xs):
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"))
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--inflight", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--algs", default="ed25519-sha256,rsa-sha256")
    ap.add_argument("--checkpoint", type=int, default=1000)
    ap.add_argument("--log-dir", default=None)
    opts = ap.parse_args()
    os.environ["DKIMKEEP_BUILD_DIR"] = os.path.abspath(opts.build)
    from harness import Env, prog
    from daemon_harness import World
    from run_bench import make_message

    env = Env("audit-bench")
    log_dir = opts.log_dir or tempfile.mkdtemp(prefix="dkimkeep-audit-bench-")
    try:
        algs = opts.algs.split(",")
        w = World(env, algs=tuple(algs), backup=False, workers=opts.workers,
                  extra_daemon="max_connections = 2048\n")
        base = open(env.conf).read()
        msg = env.path("message.eml")
        make_message(msg)

        def run(alg, audit, n):
            log = os.path.join(log_dir, f"audit-{alg}.jsonl")
            extra = (f"audit_log = {log}\naudit_checkpoint = {opts.checkpoint}\n"
                     if audit else "")
            env.write_config(base.replace("[daemon]\n", "[daemon]\n" + extra, 1))
            w.start()
            cpu0 = cpu_seconds(w.daemon.pid)
            cp = env.run([prog("dkimkeep-bench"), "-c", env.conf, "--message", msg,
                          "--alg", alg, "--clients", str(opts.clients),
                          "--inflight", str(opts.inflight), "--seconds", str(opts.seconds),
                          "--warmup", "1", "--no-raw", "--json", "-q"], timeout=600)
            cpu1 = cpu_seconds(w.daemon.pid)
            w.stop()
            if cp.returncode != 0:
                sys.exit(f"dkimkeep-bench failed: {cp.stderr.decode()}")
            doc = json.loads(cp.stdout)
            if doc.get("errors"):
                sys.exit(f"{doc['errors']} errors: {doc}")
            share = (cpu1[1] - cpu0[1]) / max(cpu1[0] - cpu0[0], 1e-9)
            doc["audit_cpu_us"] = share * doc["daemon"]["cpu_us_per_msg"]
            print(f"# {alg} pair {n} audit {'on ' if audit else 'off'}: "
                  f"{doc['msgs_per_s']:.0f} msgs/s, daemon CPU "
                  f"{doc['daemon']['cpu_us_per_msg']:.0f} us/msg (audit thread "
                  f"{doc['audit_cpu_us']:.0f}), p50 {doc['p50_us']} us, p99 {doc['p99_us']} us",
                  file=sys.stderr, flush=True)
            return doc

        print(f"{opts.clients} clients x {opts.inflight} in flight, {opts.workers} workers, "
              f"{opts.pairs} pairs of {opts.seconds} s runs, audit_checkpoint = "
              f"{opts.checkpoint}\n")
        print("| algorithm | msgs/s off | msgs/s on | cost (quartiles) | daemon CPU us/msg "
              "off / on | audit thread us/msg | p50 ms off / on | p99 ms off / on |")
        print("|---|---|---|---|---|---|---|---|")
        for alg in algs:
            off, on = [], []
            for n in range(opts.pairs):
                order = (False, True) if n % 2 == 0 else (True, False)
                for audit in order:
                    (on if audit else off).append(run(alg, audit, n))
            ratios = [b["msgs_per_s"] / a["msgs_per_s"] for a, b in zip(off, on)]
            q1, med, q3 = quartiles(ratios)
            m = lambda docs, f: statistics.median(f(d) for d in docs)
            print(f"| {alg} | {m(off, lambda d: d['msgs_per_s']):.0f} "
                  f"| {m(on, lambda d: d['msgs_per_s']):.0f} "
                  f"| {100 * (1 - med):.1f}% ({100 * (1 - q3):.1f}% to {100 * (1 - q1):.1f}%) "
                  f"| {m(off, lambda d: d['daemon']['cpu_us_per_msg']):.0f} / "
                  f"{m(on, lambda d: d['daemon']['cpu_us_per_msg']):.0f} "
                  f"| {m(on, lambda d: d['audit_cpu_us']):.0f} "
                  f"| {m(off, lambda d: d['p50_us']) / 1000:.1f} / "
                  f"{m(on, lambda d: d['p50_us']) / 1000:.1f} "
                  f"| {m(off, lambda d: d['p99_us']) / 1000:.1f} / "
                  f"{m(on, lambda d: d['p99_us']) / 1000:.1f} |", flush=True)
        recs = sum(1 for f in os.listdir(log_dir) for _ in open(os.path.join(log_dir, f)))
        print(f"\n{recs} audit records written in {log_dir}", file=sys.stderr)
    finally:
        env.cleanup()


if __name__ == "__main__":
    main()
