#!/usr/bin/python3
"""Run the dkimkeep performance cases and check them against the goals.

Builds private worlds (a SoftHSM token in a temp dir, a config, keys, a real
dkimkeepd) with the programs of a build dir, runs dkimkeep-bench and
bench/opendkim_bench for every case a few times, and prints a Markdown table
(best run and spread) for docs/performance.md.  Every run's JSON goes to
--json-out.

    tests/bench/run_bench.py --build build-bench --repeat 3
    tests/bench/run_bench.py --build build-bench --cases rsa,ed25519 --seconds 5
    tests/bench/run_bench.py --build build-bench --keep-worlds /var/tmp/dk-worlds

Worlds:
  small  one token, example.com with rsa-sha256 and ed25519-sha256 keys,
         workers = 2, max_connections = 2048
  many   one token, --many-domains domains (d0000.bench.example, ...) with an
         ed25519-sha256 key each (Ed25519: quick to generate, and its cheaper
         signature makes per-request overhead show more than RSA would);
         the [client] lists every domain, as a multi-tenant host would.

Cases (all with a 4 KB message, 2 workers):
  rsa, ed25519          8 clients x 4 in flight: msgs/s, ratio to raw
  rsa-lat, ed25519-lat  1 client x 1 in flight, raw with 1 session: p50
  opendkim              libopendkim, 2 processes (after each rsa run) and 1,
                        RSA-2048 in process
  idle                  rsa as above with 1,000 idle connections: daemon RSS
  domains               many world: --domains 1 and --domains N
No timing is asserted here: this is a measuring tool, not a test.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))

ALL_CASES = ["rsa", "ed25519", "rsa-lat", "ed25519-lat", "opendkim", "idle", "domains"]


def make_message(path, size=4096):
    """A plain 4 KB message: a realistic header section (~800 bytes) and a text body."""
    hdr = ("From: Joe Sender <joe@example.com>\r\n"
           "To: Mary Receiver <mary@example.net>\r\n"
           "Cc: list@example.org\r\n"
           "Subject: Quarterly report: figures for the third quarter, as discussed\r\n"
           "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
           "Message-ID: <20261124100000.12345@mail.example.com>\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n"
           "Received: from client.example.com (client.example.com [192.0.2.10])\r\n"
           "\tby mail.example.com (Postfix) with ESMTPSA id 4Ab1Cd2Ef3\r\n"
           "\tfor <mary@example.net>; Tue, 24 Nov 2026 10:00:00 +0000 (UTC)\r\n"
           "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Thunderbird/115.5.0\r\n")
    body, i = "", 0
    while len(hdr) + 2 + len(body) < size - 80:
        i += 1
        body += "Line %03d of the report: lorem ipsum dolor sit amet, consectetur.\r\n" % i
    msg = hdr + "\r\n" + body
    msg += "x" * (size - len(msg) - 2) + "\r\n"
    with open(path, "w", newline="") as f:
        f.write(msg)
    return path


class BenchWorld:
    """One token, a config and a daemon, built with the harness's Env.

    With keep_dir the world lives in keep_dir/name and is kept: a later run
    finds it complete (the marker file) and skips making the token and keys,
    which takes minutes for a thousand domains.
    """

    def __init__(self, name, domains, algs, workers=2, max_connections=2048, keep_dir=None):
        from harness import Env
        self.e = Env(name)
        self.domains = domains
        self.daemon = None
        e = self.e
        marker = None
        if keep_dir:
            shutil.rmtree(e.dir, ignore_errors=True)
            e.dir = os.path.abspath(os.path.join(keep_dir, name))
            e.keep = True
            self._relocate()
            marker = e.path("world.ok")
            if os.path.exists(marker):
                log(f"  {name}: reusing the world in {e.dir}")
                return
            shutil.rmtree(e.dir, ignore_errors=True)
            self._relocate()
        conf = (f"[daemon]\nsocket = {e.socket}\nworkers = {workers}\nqueue = 1024\n"
                f"max_connections = {max_connections}\n\n")
        conf += e.token_section("primary", "dk-bench")
        for d in domains:
            conf += f"[domain {d}]\nalgorithms = {', '.join(algs)}\nprimary = primary\n\n"
        # One domain per continuation line: config lines are at most 4096 bytes.
        conf += (f"[client bench]\nuid = {os.getuid()}\ndomains = "
                 + ",\n  ".join(domains) + "\n")
        e.write_config(conf)
        e.init_token("primary", "dk-bench")
        t0 = time.time()
        for i, d in enumerate(domains):
            for a in algs:
                e.cli("key", "generate", "--domain", d, "--alg", a, "--activate")
            if len(domains) > 50 and (i + 1) % 100 == 0:
                log(f"  {name}: keys for {i + 1}/{len(domains)} domains "
                    f"({time.time() - t0:.0f} s)")
        if marker:
            with open(marker, "w") as f:
                f.write("complete\n")

    def _relocate(self):
        """Point the Env's paths at e.dir (Env made its own temp dir)."""
        e = self.e
        os.makedirs(e.dir, exist_ok=True)
        e.tokens = e.path("tokens")
        os.makedirs(e.tokens, exist_ok=True)
        e.softhsm_conf = e.path("softhsm2.conf")
        with open(e.softhsm_conf, "w") as f:
            f.write(f"directories.tokendir = {e.tokens}\n"
                    "objectstore.backend = file\nlog.level = ERROR\n")
        e.env["SOFTHSM2_CONF"] = e.softhsm_conf
        e.conf = e.path("dkimkeep.conf")
        e.socket = e.path("sign.sock")

    def start(self):
        """Start dkimkeepd; ready once it answers a status request."""
        from harness import prog
        e = self.e
        # Its log goes to a file: a pipe nobody reads fills up (a thousand domains
        # without standby keys log a thousand warnings) and would block the daemon.
        self.log = open(e.path("dkimkeepd.log"), "ab")
        self.daemon = subprocess.Popen([prog("dkimkeepd"), "-c", e.conf, "-f"], env=e.env,
                                       stdout=self.log, stderr=self.log)
        end = time.time() + 600
        while time.time() < end:
            if self.daemon.poll() is not None:
                raise RuntimeError(f"dkimkeepd exited; see {e.path('dkimkeepd.log')}")
            cp = subprocess.run([prog("dkimkeep"), "status", "--socket", e.socket],
                                env=e.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
            if cp.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("dkimkeepd did not start")

    def stop(self):
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
            self.log.close()
        self.daemon = None

    def cleanup(self):
        self.stop()
        self.e.cleanup()


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def bench(world, msg, alg, args, opts):
    """One dkimkeep-bench run; its JSON document, with the load average before it."""
    from harness import prog
    load = os.getloadavg()[0]
    argv = [prog("dkimkeep-bench"), "-c", world.e.conf, "--message", msg, "--alg", alg,
            "--seconds", str(opts.seconds), "--warmup", str(opts.warmup),
            "--rounds", str(opts.rounds), "--json", "-q"]
    argv += [str(a) for a in args]
    cp = world.e.run(argv, timeout=600)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {cp.returncode}: {cp.stderr.decode()}")
    res = json.loads(cp.stdout)
    res["loadavg_before"] = load
    res["argv"] = " ".join(["dkimkeep-bench"] + argv[1:])
    return res


def opendkim(msg, procs, opts):
    exe = opts.opendkim_bench
    load = os.getloadavg()[0]
    argv = [exe, "--message", msg, "--procs", str(procs), "--seconds", str(opts.seconds),
            "--warmup", "2", "--json"]
    cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {cp.returncode}: {cp.stderr.decode()}")
    res = json.loads(cp.stdout)
    res["loadavg_before"] = load
    res["argv"] = " ".join(["opendkim_bench"] + argv[1:])
    return res


def repeat(label, n, fn):
    runs = []
    for i in range(n):
        r = fn()
        runs.append(r)
        brief = {k: r.get(k) for k in ("msgs_per_s", "ratio", "p50_us", "raw_p50_us",
                                        "raw_sigs_per_s", "errors") if k in r}
        if "daemon" in r and r["daemon"].get("rss_kib"):
            brief["rss_kib"] = r["daemon"]["rss_kib"]
        log(f"  {label} run {i + 1}/{n}: {brief} (load {r['loadavg_before']:.2f})")
    return runs


def best(runs, key, lower=False, sub=None):
    vals = [(r.get(sub) or {} if sub else r).get(key) for r in runs]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, None
    b = min(vals) if lower else max(vals)
    return b, min(vals), max(vals)


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def spread(lo, hi, digits=0):
    return f"{fmt(lo, digits)} – {fmt(hi, digits)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"),
                    help="the CMake build dir holding client/dkimkeep-bench etc.")
    ap.add_argument("--opendkim-bench", default=None,
                    help="opendkim_bench (default: BUILD/bench/opendkim_bench or "
                         "BUILD/opendkim/opendkim_bench)")
    ap.add_argument("--cases", default=",".join(ALL_CASES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=0.5,
                    help="warm-up before each slice (default 0.5)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="dkimkeep-bench --rounds: alternate socket and raw halves, so that "
                         "both see the same background load (default 5)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--inflight", type=int, default=4)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--many-domains", type=int, default=1000)
    ap.add_argument("--json-out", default="bench-results.json")
    ap.add_argument("--keep-worlds", metavar="DIR", default=None,
                    help="keep the worlds in DIR and reuse them on later runs")
    opts = ap.parse_args()
    os.environ["DKIMKEEP_BUILD_DIR"] = os.path.abspath(opts.build)
    if opts.opendkim_bench is None:
        for p in ("bench/opendkim_bench", "opendkim/opendkim_bench"):
            if os.access(os.path.join(opts.build, p), os.X_OK):
                opts.opendkim_bench = os.path.join(opts.build, p)
    cases = opts.cases.split(",")
    for c in cases:
        if c not in ALL_CASES:
            ap.error(f"unknown case {c}; cases are {', '.join(ALL_CASES)}")

    results = {"machine": machine(), "cases": {}}
    msgdir = os.path.abspath("bench-msg")
    os.makedirs(msgdir, exist_ok=True)
    msg = make_message(os.path.join(msgdir, "4k.eml"))
    load = ["--clients", opts.clients, "--inflight", opts.inflight]
    R = results["cases"]

    small = None
    try:
        if any(c in cases for c in ("rsa", "ed25519", "rsa-lat", "ed25519-lat", "idle")):
            log("world small: one token, example.com, rsa-sha256 + ed25519-sha256")
            small = BenchWorld("bench-small", ["example.com"], ["rsa-sha256", "ed25519-sha256"],
                               keep_dir=opts.keep_worlds)
            small.start()
            with_odk = "opendkim" in cases and opts.opendkim_bench
            for alg in ("rsa", "ed25519"):
                if alg in cases and alg == "rsa" and with_odk:
                    # Each RSA run is followed by libopendkim with 2 processes, so
                    # that each pair sees about the same background load.
                    for _ in range(opts.repeat):
                        R.setdefault("rsa", []).extend(repeat(
                            "rsa", 1, lambda: bench(small, msg, "rsa-sha256", load, opts)))
                        R.setdefault("opendkim-2", []).extend(repeat(
                            "opendkim 2 procs", 1, lambda: opendkim(msg, 2, opts)))
                elif alg in cases:
                    R[alg] = repeat(alg, opts.repeat,
                                    lambda: bench(small, msg, alg + "-sha256", load, opts))
                if alg + "-lat" in cases:
                    R[alg + "-lat"] = repeat(
                        alg + "-lat", opts.repeat,
                        lambda: bench(small, msg, alg + "-sha256",
                                      ["--clients", 1, "--inflight", 1, "--raw-threads", 1],
                                      opts))
            if "idle" in cases:
                # A fresh daemon: SoftHSM 2.6.1 leaks memory on every Ed25519
                # signature, which the runs above have made plenty of.
                small.stop()
                small.start()
                R["idle-0"] = repeat("idle 0", 1, lambda: bench(small, msg, "rsa-sha256",
                                                                 load, opts))
                R["idle"] = repeat("idle", opts.repeat,
                                   lambda: bench(small, msg, "rsa-sha256",
                                                 load + ["--connections", opts.idle], opts))
            small.cleanup()
            small = None
        if "opendkim" in cases:
            if not opts.opendkim_bench:
                log("opendkim_bench not built: skipping the opendkim case")
            else:
                if "opendkim-2" not in R:
                    R["opendkim-2"] = repeat("opendkim 2 procs", opts.repeat,
                                             lambda: opendkim(msg, 2, opts))
                R["opendkim-1"] = repeat("opendkim 1 proc", opts.repeat,
                                         lambda: opendkim(msg, 1, opts))
        if "domains" in cases:
            n = opts.many_domains
            log(f"world many: one token, {n} domains with an ed25519-sha256 key each")
            doms = ["d%04d.bench.example" % i for i in range(n)]
            small = BenchWorld(f"bench-many-{n}", doms, ["ed25519-sha256"],
                               keep_dir=opts.keep_worlds)
            t0 = time.time()
            small.start()
            results["many_start_s"] = time.time() - t0
            for _ in range(opts.repeat):
                # Interleaved, so both see the same background load.
                R.setdefault("domains-1", []).extend(
                    repeat("domains 1", 1, lambda: bench(small, msg, "ed25519-sha256",
                                                         load + ["--domains", 1], opts)))
                R.setdefault("domains-n", []).extend(
                    repeat(f"domains {n}", 1, lambda: bench(small, msg, "ed25519-sha256",
                                                           load + ["--domains", n], opts)))
            small.cleanup()
            small = None
    finally:
        if small is not None:
            small.cleanup()
        shutil.rmtree(msgdir, ignore_errors=True)

    with open(opts.json_out, "w") as f:
        json.dump(results, f, indent=1)
    print(report(results, opts))


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": os.uname().release,
            "softhsm": pkg_version("softhsm2"), "libopendkim": pkg_version("libopendkim11")}


def pkg_version(p):
    cp = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL)
    return cp.stdout.decode() or "?"


def report(results, opts):
    R = results["cases"]
    lines = ["| case | figure | best | spread (all runs) | goal | met |",
             "|---|---|---|---|---|---|"]

    def row(case, figure, b, lo, hi, goal, met, digits=0):
        lines.append(f"| {case} | {figure} | {fmt(b, digits)} | {spread(lo, hi, digits)} "
                     f"| {goal} | {met} |")

    for alg, goal in (("rsa", 0.90), ("ed25519", 0.80)):
        if alg in R:
            b, lo, hi = best(R[alg], "msgs_per_s")
            row(alg, "msgs/s", b, lo, hi, "", "")
            b, lo, hi = best(R[alg], "raw_sigs_per_s")
            row(alg, "raw sigs/s", b, lo, hi, "", "")
            b, lo, hi = best(R[alg], "ratio")
            row(alg, "ratio", b, lo, hi, f"≥ {goal:.2f}", yes(b is not None and b >= goal), 3)
            b, lo, hi = best(R[alg], "cpu_ratio")
            row(alg, "cpu_ratio (from CPU times)", b, lo, hi, f"≥ {goal:.2f}",
                yes(b is not None and b >= goal), 3)
            b, lo, hi = best(R[alg], "p50_us", lower=True)
            row(alg, "p50 µs (8x4 in flight)", b, lo, hi, "", "")
            b, lo, hi = best(R[alg], "cpu_us_per_msg", lower=True, sub="daemon")
            row(alg, "daemon CPU µs/msg", b, lo, hi, "", "")
            b, lo, hi = best(R[alg], "raw_cpu_us_per_sig", lower=True)
            row(alg, "raw CPU µs/sig", b, lo, hi, "", "")
            b, lo, hi = best(R[alg], "client_cpu_us_per_msg", lower=True)
            row(alg, "bench client CPU µs/msg", b, lo, hi, "", "")
            b, lo, hi = best(R[alg], "ctxsw_per_msg", lower=True, sub="daemon")
            row(alg, "daemon context switches/msg", b, lo, hi, "", "", 2)
    for alg in ("rsa", "ed25519"):
        c = alg + "-lat"
        if c in R:
            # Judge each run against its own raw p50, then take the best run.
            gaps = [r["p50_us"] - r["raw_p50_us"] for r in R[c]]
            b, lo, hi = best(R[c], "p50_us", lower=True)
            row(c, "p50 µs (1 client x 1)", b, lo, hi, "", "")
            b2, lo2, hi2 = best(R[c], "raw_p50_us", lower=True)
            row(c, "raw C_Sign p50 µs (1 session)", b2, lo2, hi2, "", "")
            row(c, "p50 − raw p50 µs", min(gaps), min(gaps), max(gaps), "≤ 50",
                yes(min(gaps) <= 50))
    if "opendkim-2" in R:
        b, lo, hi = best(R["opendkim-2"], "msgs_per_s")
        row("opendkim", "libopendkim msgs/s, 2 procs", b, lo, hi, "", "")
        if "opendkim-1" in R:
            b1, lo1, hi1 = best(R["opendkim-1"], "msgs_per_s")
            row("opendkim", "libopendkim msgs/s, 1 proc", b1, lo1, hi1, "", "")
        if "rsa" in R and len(R["rsa"]) == len(R["opendkim-2"]):
            pairs = [k["msgs_per_s"] / o["msgs_per_s"] for k, o in zip(R["rsa"], R["opendkim-2"])]
            row("rsa vs opendkim", "dkimkeep rsa ÷ libopendkim 2 procs (best pair)",
                max(pairs), min(pairs), max(pairs), "≥ 1.30", yes(max(pairs) >= 1.3), 2)
    if "idle" in R:
        if "idle-0" in R:
            b, lo, hi = best(R["idle-0"], "rss_kib", lower=True, sub="daemon")
            row("idle", "daemon RSS MiB, fresh, 9 conns", b / 1024 if b else None,
                lo / 1024 if lo else None, hi / 1024 if hi else None, "", "", 1)
        b, lo, hi = best(R["idle"], "rss_kib", lower=True, sub="daemon")
        row("idle", f"daemon RSS MiB, {opts.idle} idle conns", b / 1024 if b else None,
            lo / 1024 if lo else None, hi / 1024 if hi else None, "≤ 32",
            yes(b is not None and b / 1024 <= 32), 1)
        b, lo, hi = best(R["idle"], "msgs_per_s")
        row("idle", "msgs/s meanwhile", b, lo, hi, "", "")
    if "domains-1" in R:
        b1, lo1, hi1 = best(R["domains-1"], "msgs_per_s")
        bn, lon, hin = best(R["domains-n"], "msgs_per_s")
        row("domains", "msgs/s, --domains 1", b1, lo1, hi1, "", "")
        row("domains", f"msgs/s, --domains {opts.many_domains}", bn, lon, hin, "", "")
        pairs = [n["msgs_per_s"] / o["msgs_per_s"] for o, n in zip(R["domains-1"], R["domains-n"])]
        row("domains", "N ÷ 1 (best pair)", max(pairs), min(pairs), max(pairs), "≥ 0.95",
            yes(max(pairs) >= 0.95), 3)
        b, lo, hi = best(R["domains-1"], "cpu_us_per_msg", lower=True, sub="daemon")
        row("domains", "daemon CPU µs/msg, --domains 1", b, lo, hi, "", "")
        b, lo, hi = best(R["domains-n"], "cpu_us_per_msg", lower=True, sub="daemon")
        row("domains", f"daemon CPU µs/msg, --domains {opts.many_domains}", b, lo, hi, "", "")
    loads = [r["loadavg_before"] for runs in R.values() for r in runs]
    m = results["machine"]
    if loads:
        lines.append("")
        lines.append(f"Load average (1 min) before the runs: {min(loads):.1f} – {max(loads):.1f}.")
    head = (f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, "
            f"SoftHSM {m['softhsm']}, libopendkim {m['libopendkim']}.  "
            f"{opts.repeat} runs per case; each dkimkeep-bench run measures {opts.seconds:g} s "
            f"of each half in {opts.rounds} alternating slices, each after a "
            f"{opts.warmup:g} s warm-up.\n\n")
    return head + "\n".join(lines)


def yes(b):
    return "yes" if b else "**no**"


if __name__ == "__main__":
    main()
