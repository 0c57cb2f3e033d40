"""Many daemons, one HSM: a SoftHSM token exported by a real `p11-kit server` on a
Unix socket, three dkimkeepd instances reaching it through p11-kit-client.so
(`env = P11_KIT_SERVER_ADDRESS=...` in [token primary]), and a SoftHSM backup
token on the test host (one for the three here; one per host in production).  Signing load runs on all three; every signature is judged
by dkimpy against the records `dkimkeep key dns` prints, never by dkimkeep.

Debian 12's p11-kit (0.24.1) does not carry CKM_EDDSA or
CKM_EC_EDWARDS_KEY_PAIR_GEN over its RPC (p11-glue/p11-kit#668), so the remote
keys here are RSA; docs/scaling.md says so.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

import dkim

sys.path.insert(0, os.path.dirname(__file__))
from harness import EnvTestCase, prog, p11fault_path, SOFTHSM, wait_for
from daemon_harness import World
from rotation_harness import (Knot, Load as LiveLoad, ZONE, daemon_log, keys, rotation_config,
                              selectors_of, signing_keys, start_daemon)

CLIENT_MODULE = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
MSG = (b"From: Joe <joe@example.com>\r\nTo: ann@example.net\r\nSubject: scale out\r\n"
       b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <s1@example.com>\r\n\r\n"
       b"Signed through a remote token.\r\n")
DAEMON = "health_interval = 1s\nsign_timeout_ms = 2000\n"


class P11KitServer:
    """`p11-kit server -f` exporting one SoftHSM token (its own token dir) on a socket."""

    def __init__(self, env, label):
        self.e, self.label = env, label
        self.dir = env.path("hsm")
        os.mkdir(self.dir)
        os.mkdir(os.path.join(self.dir, "tokens"))
        self.conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.conf, "w") as f:
            f.write(f"directories.tokendir = {self.dir}/tokens\n"
                    "objectstore.backend = file\nlog.level = ERROR\n")
        self.socket = env.path("p11-kit.sock")
        self.proc = None

    def env(self):
        e = dict(self.e.env)
        e["SOFTHSM2_CONF"] = self.conf
        e.pop("P11_KIT_SERVER_ADDRESS", None)
        return e

    def start(self):
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        log = open(self.e.path("p11-kit-server.log"), "ab")
        self.proc = subprocess.Popen(
            ["p11-kit", "server", "-f", "-n", self.socket, "--provider", SOFTHSM,
             f"pkcs11:token={self.label}"], env=self.env(), stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.e.procs.append(self.proc)
        wait_for(lambda: os.path.exists(self.socket), "p11-kit server listens", timeout=30)

    def kill(self):
        """The HSM host goes away: the listener and the p11-kit-remote it forked for each
        connection (killing the listener alone leaves the open connections served)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


class Load:
    """`dkimkeep sign` in a loop against one daemon; results kept for checking."""

    def __init__(self, env, sock):
        self.e, self.sock = env, sock
        self.results, self.lock, self.stop_ev = [], threading.Lock(), threading.Event()
        self.t = threading.Thread(target=self._run)

    def _run(self):
        argv = [prog("dkimkeep"), "sign", "--socket", self.sock]
        while not self.stop_ev.is_set():
            cp = subprocess.run(argv, input=MSG, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.e.env, timeout=120)
            with self.lock:
                self.results.append((cp.returncode, cp.stdout, cp.stderr))

    def start(self):
        self.t.start()
        return self

    def finish(self):
        self.stop_ev.set()
        self.t.join(timeout=300)
        return self.results

    def count(self):
        with self.lock:
            return len(self.results)

    def seen(self, selector, after=0):
        with self.lock:
            return any(rc == 0 and selector in selectors_of(out)
                       for rc, out, _ in self.results[after:])


class ScaleOut(EnvTestCase):
    def setUp(self):
        super().setUp()
        if not os.path.exists(CLIENT_MODULE) or shutil.which("p11-kit") is None:
            self.fail(f"{CLIENT_MODULE} or p11-kit missing: install p11-kit and p11-kit-modules")
        e = self.e
        self.hsm = P11KitServer(e, "dk-remote")
        # The security officer initializes the HSM's token on the HSM host (SoftHSM direct).
        admin = e.token_section("primary", "dk-remote")
        e.write_config(admin)
        e.run([prog("dkimkeep"), "-c", e.conf, "token", "init", "--token", "primary",
               "--label", "dk-remote", "--so-pin-file", e.pin("so.pin", "87654321"),
               "--pin-file", e.path("primary.pin")], check=0, env={"SOFTHSM2_CONF": self.hsm.conf})
        self.hsm.start()
        conf = (f"[daemon]\nsocket = {e.socket}\nworkers = 2\nstep_interval = 1s\n{DAEMON}\n"
                f"[token primary]\nmodule = {CLIENT_MODULE}\nuri = pkcs11:token=dk-remote\n"
                f"pin_file = {e.path('primary.pin')}\n"
                f"env = P11_KIT_SERVER_ADDRESS=unix:path={self.hsm.socket}\n\n")
        conf += e.token_section("backup", "dk-backup")
        conf += ("[domain example.com]\nalgorithms = rsa-sha256\nprimary = primary\n"
                 "backup = backup\n\n"
                 f"[client tests]\nuid = {os.getuid()}\ndomains = example.com\n\n")
        e.write_config(conf)
        e.init_token("backup", "dk-backup")
        # Admin commands through the remote token: the keys are made in the HSM over RPC.
        e.cli("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256", "--activate")
        e.cli("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256",
              "--slot", "backup")
        self.daemons = []

    def records(self):
        cp = self.e.cli("key", "dns", "--json")
        return {r["name"].rstrip("."): r["value"] for r in json.loads(cp.stdout)}

    def keys(self):
        return json.loads(self.e.cli("key", "list", "--json").stdout)

    def start_daemons(self, n=3):
        e = self.e
        with open(e.conf) as f:
            text = f.read()
        for i in range(n):
            sock = e.path(f"sign{i}.sock")
            conf = e.write(f"d{i}.conf", text.replace(f"socket = {e.socket}", f"socket = {sock}"))
            log = open(e.path(f"d{i}.log"), "ab")
            p = subprocess.Popen([prog("dkimkeepd"), "-c", conf, "-f"], env=e.env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
            log.close()
            e.procs.append(p)
            w = World.__new__(World)
            w.e, w.daemon = e, p
            old, e.socket = e.socket, sock
            try:
                w.wait_ready()
            finally:
                e.socket = old
            self.daemons.append((p, sock, e.path(f"d{i}.log")))
        self.addCleanup(lambda: self.failed()
                        and print("\n".join(open(lg, errors="replace").read()[-4000:]
                                            for _, _, lg in self.daemons)))

    def check_all(self, results, records):
        """Every signed message verifies with dkimpy; returns the failures."""
        def dnsfunc(name, timeout=5):
            if isinstance(name, bytes):
                name = name.decode()
            v = records.get(name.rstrip("."))
            return v.encode() if v else None
        bad = []
        for rc, out, err in results:
            if rc != 0:
                bad.append(f"exit {rc}: {err.decode(errors='replace')}")
            elif not selectors_of(out) or not dkim.DKIM(out).verify(dnsfunc=dnsfunc):
                bad.append(f"does not verify: {out[:300]!r}")
        return bad

    def stop_daemons(self):
        for p, _, _ in self.daemons:
            p.send_signal(signal.SIGTERM)
        for p, _, _ in self.daemons:
            self.assertEqual(p.wait(timeout=60), 0)

    def test_three_daemons_sign_through_p11kit(self):
        """Three daemons on one remote token: all sign, every signature verifies, and the
        key list through p11-kit shows the remote keys."""
        self.start_daemons()
        remote = [k for k in self.keys() if k["slot"] == "primary"]
        self.assertEqual(len(remote), 1)
        self.assertEqual(remote[0]["token"], "primary")
        loads = [Load(self.e, s).start() for _, s, _ in self.daemons]
        try:
            wait_for(lambda: all(l.count() >= 15 for l in loads), "15 signatures per daemon")
        finally:
            results = [r for l in loads for r in l.finish()]
        self.assertEqual(self.check_all(results, self.records()), [])
        for l in loads:
            self.assertTrue(l.seen(remote[0]["selector"]), "a daemon never signed remotely")
        self.stop_daemons()

    def lose_server(self):
        """Load on all three daemons, then the HSM host dies: every daemon fails over to its
        local backup token, and no request fails.  Returns (loads, primary, records)."""
        self.start_daemons()
        ks = self.keys()
        primary = [k["selector"] for k in ks if k["slot"] == "primary"][0]
        standby = [k["selector"] for k in ks if k["slot"] == "backup"][0]
        records = self.records()
        loads = [Load(self.e, s).start() for _, s, _ in self.daemons]
        try:
            wait_for(lambda: all(l.seen(primary) for l in loads), "all sign with the primary")
            self.hsm.kill()
            marks = [l.count() for l in loads]
            wait_for(lambda: all(l.seen(standby, m) for l, m in zip(loads, marks)),
                     "all fail over to the standby key")
        except BaseException:
            for l in loads:
                l.finish()
            raise
        return loads, primary, records

    def test_server_lost(self):
        """The p11-kit server and its connections die under load: every daemon fails over
        to its local backup token without a failed request; every signature verifies."""
        loads, _, records = self.lose_server()
        marks = [l.count() for l in loads]
        try:
            wait_for(lambda: all(l.count() > m + 5 for l, m in zip(loads, marks)),
                     "more signatures with the standby")
        finally:
            results = [r for l in loads for r in l.finish()]
        self.assertEqual(self.check_all(results, records), [])
        self.stop_daemons()

    def test_server_back(self):
        """The server comes back: every daemon's health check initializes its own instance of
        p11-kit-client.so again (it connects only in C_Initialize), logs in, and signs with
        the remote primary key again; no request fails on the way."""
        loads, primary, records = self.lose_server()
        try:
            self.hsm.start()
            marks = [l.count() for l in loads]
            wait_for(lambda: all(l.seen(primary, m) for l, m in zip(loads, marks)),
                     "all come back to the remote primary key", timeout=30)
        finally:
            results = [r for l in loads for r in l.finish()]
        self.assertEqual(self.check_all(results, records), [])
        self.stop_daemons()

    def test_rotation_three_daemons(self):
        """A rotation through the remote token with three daemons signing: one of them
        drives it (the lease), 0 requests fail, every signature verifies against the
        records knot serves at that moment, and all three move to the new key."""
        e = self.e
        knot = Knot(e, json.loads(e.cli("key", "dns", "--json").stdout))
        rotation_config(e, knot, "publish_wait = 1s\nretire_after = 2s\ndestroy_after = 2s\n"
                        "dns_publish = rfc2136\n", notify=False)
        self.start_daemons()
        loads = [LiveLoad(e, knot, s, threads=1).start() for _, s, _ in self.daemons]
        try:
            old = signing_keys(e)[("rsa-sha256", "primary")]
            wait_for(lambda: all(l.seen([old]) for l in loads), "all sign with the old key")
            e.cli("key", "rotate", "--domain", "example.com")
            wait_for(lambda: signing_keys(e)[("rsa-sha256", "primary")] != old,
                     "the new key is active")
            new = signing_keys(e)[("rsa-sha256", "primary")]
            t0 = time.monotonic()
            wait_for(lambda: all(l.seen([new]) for l in loads), "all three sign with the new key")
            # Within one step interval of a reload; the slack is for loaded test machines.
            self.assertLess(time.monotonic() - t0, 15)
            wait_for(lambda: old not in {k["selector"] for k in keys(e)}, "the old key is destroyed")
        finally:
            for l in loads:
                l.finish()
        for l in loads:
            self.assertEqual(l.failures(), [])
            self.assertGreater(len(l.results), 5)
        self.assertEqual([k["selector"] for k in keys(e) if k["slot"] == "primary"], [new])
        # One daemon took each token's lease; "key rotate" (an operator) had it handed over
        # while it ran, and then one daemon took it back: taken once more per hand-over.
        for token in ("primary", "backup"):
            took, gave = [], []
            for _, _, lg in self.daemons:
                with open(lg, errors="replace") as f:
                    text = f.read()
                took += [lg] * text.count(f'rotation lease of token "{token}" taken')
                gave += [lg] * text.count(f'rotation lease of token "{token}" handed over')
            self.assertLessEqual(len(gave), 1, f"token {token}: handed over by {gave}")
            self.assertEqual(len(took), 1 + len(gave), f"token {token}: taken by {took}")
        self.stop_daemons()


class LeaseRace(EnvTestCase):
    def test_racing_key_step(self):
        """Three "key step" started together, round after round, through a whole rotation:
        they take turns (the lease: the others wait and say so), never two active keys,
        never a key lost, each move made exactly once."""
        e = self.e
        # step_interval: a retired key is revoked two intervals after (docs/rotation.md).
        w = World(e, algs=("rsa-sha256",), backup=False, extra_daemon="step_interval = 1s\n")
        knot = Knot(e, w.refresh_records())
        rotation_config(e, knot, "publish_wait = 1s\nretire_after = 1s\ndestroy_after = 1s\n"
                        "dns_publish = rfc2136\n", notify=False)
        old = signing_keys(e)[("rsa-sha256", "primary")]
        ev = json.loads(e.cli("key", "rotate", "--domain", "example.com", "--json").stdout)
        new = [x["selector"] for x in ev if x["event"] == "started"][0]
        moves, driven, rounds = [], 0, 0
        moving = ("activated", "retired", "revoked", "destroyed", "started")
        while rounds < 40:
            rounds += 1
            procs = [subprocess.Popen([prog("dkimkeep"), "-c", e.conf, "key", "step", "--json"],
                                      env=e.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                     for _ in range(3)]
            outs = [p.communicate(timeout=120) for p in procs]
            for i, (p, (out, err)) in enumerate(zip(procs, outs)):
                self.assertIn(p.returncode, (0, 75), err.decode(errors="replace"))
                moves += [(x["event"], f'round {rounds} step {i} {x["time"]} {x["selector"]}: '
                           f'{x["text"]}') for x in json.loads(out) if x["event"] in moving]
                driven += b"waiting for the rotation lease" in err
            ks = keys(e)
            active = [k["selector"] for k in ks if k["state"] == "active"]
            self.assertEqual(len(active), 1, f"round {rounds}: active keys {active}")
            self.assertIn(new, {k["selector"] for k in ks}, f"round {rounds}: the new key is lost")
            if [k["selector"] for k in ks] == [new]:
                break
            time.sleep(0.5)
        self.assertEqual([(k["selector"], k["state"]) for k in keys(e)], [(new, "active")])
        made = [m for m, _ in moves]
        for m in ("activated", "retired", "revoked", "destroyed"):
            self.assertEqual(made.count(m), 1, f"{m} made {made.count(m)} times:\n" +
                             "\n".join(f"{m}, {how}" for m, how in moves))
        # Started together, they cannot all have had the lease at once: some waited.
        self.assertGreater(driven, 0, "no step ever waited for the lease")
        self.assertNotEqual(old, new)



class LeaseHandover(EnvTestCase):
    def test_manual_moves_beside_a_driving_daemon(self):
        """Every ring move by the CLI takes the token's lease: a daemon that drives hands it
        over at its next step (and takes it back after), so "key rotate" and "key activate"
        work beside it; a command that holds the lease (blocked in its publish hook) makes
        another one wait, then refuse with exit 75 naming the holder, moving nothing."""
        e = self.e
        w = World(e, algs=("rsa-sha256",), backup=False, extra_daemon="step_interval = 1s\n")
        knot = Knot(e, w.refresh_records())
        block = e.path("block")
        hook = e.write("publish.sh", f"""#!/bin/sh
while [ -e {block} ]; do touch {block}.seen; sleep 0.1; done
name=$(cut -d' ' -f1 {knot.tsig_file}); sec=$(cut -d' ' -f3 {knot.tsig_file})
{{ echo "server 127.0.0.1 {knot.port}"; echo "zone {ZONE}."; echo "update delete $1. TXT"
  [ "$3" != delete ] && echo "update add $1. 60 TXT \\"$2\\""
  echo send; }} | knsupdate -y "hmac-sha256:$name:$sec"
""", 0o755)
        rotation_config(e, knot, "publish_wait = 1h\nretire_after = 1h\ndestroy_after = 1h\n"
                        "dns_publish = command\n", dns_extra=f"publish_command = {hook}\n",
                        notify=False)
        start_daemon(w)
        taken = 'rotation lease of token "primary" taken'
        wait_for(lambda: taken in daemon_log(e), "the daemon takes the lease")
        old = signing_keys(e)[("rsa-sha256", "primary")]

        # An operator's rotation beside the driving daemon: the daemon hands the lease over
        # at its next step (often within the command's own settle time, so the command may
        # not have to wait at all) and says to whom.
        cp = e.cli("key", "rotate", "--domain", ZONE, "--json")
        new = [x["selector"] for x in json.loads(cp.stdout) if x["event"] == "started"][0]
        self.assertRegex(daemon_log(e),
                         r'rotation lease of token "primary" handed over to \S+/dkimkeep/\d+')
        # The daemon drives again once the operator is done.
        wait_for(lambda: daemon_log(e).count(taken) >= 2, "the daemon takes the lease back")

        # A command holding the lease (a rotation blocked in its publish hook): another one
        # waits, then refuses with 75 and names it; nothing moved.
        e.cli("key", "retire", "--domain", ZONE, "--selector", new)
        self.assertEqual({k["selector"]: k["state"] for k in keys(e)},
                         {old: "active", new: "retiring"})
        open(block, "w").close()
        holder = subprocess.Popen([prog("dkimkeep"), "-c", e.conf, "key", "rotate", "--domain",
                                   ZONE], env=e.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        e.procs.append(holder)
        wait_for(lambda: os.path.exists(block + ".seen"), "the rotation blocks in its hook")
        cp = e.cli("key", "activate", "--domain", ZONE, "--selector", new, check=None)
        err = cp.stderr.decode(errors="replace")
        self.assertEqual(cp.returncode, 75, err)
        self.assertIn(f"/dkimkeep/{holder.pid}", err)
        self.assertIn("nothing was moved", err)
        self.assertEqual({k["selector"]: k["state"] for k in keys(e)}[new], "retiring")
        os.unlink(block)
        self.assertEqual(holder.wait(timeout=120), 0)
        # The lease is free again: a manual activation goes through beside the daemon.
        e.cli("key", "activate", "--domain", ZONE, "--selector", new)
        self.assertEqual(signing_keys(e)[("rsa-sha256", "primary")], new)
        wait_for(lambda: selectors_of(w.sign(MSG).stdout) == [new], "the daemon signs with it")
        w.daemon.send_signal(signal.SIGTERM)
        self.assertEqual(w.daemon.wait(timeout=60), 0)


class ManyDomains(EnvTestCase):
    def test_step_lists_each_token_once(self):
        """A rotation step over 30 domains searches the token a fixed number of times, not
        once per domain: counted with tests/p11fault's call statistics."""
        e = self.e
        domains = tuple(f"d{i}.example.org" for i in range(30))
        World(e, domains=domains, algs=("ed25519-sha256",), backup=False, client=False)
        with open(e.conf) as f:
            text = f.read()
        e.write_config(text.replace(f"module = {SOFTHSM}\n", f"module = {p11fault_path()}\n"))
        stats = e.path("p11fault.stats")
        e.cli("key", "step", env={"P11FAULT_MODULE": SOFTHSM, "P11FAULT_STATS": stats})
        with open(stats) as f:
            calls = dict(line.split() for line in f if not line.startswith("#"))
        finds = int(calls.get("C_FindObjectsInit", 0))
        # Three for the keys, a few for the lease; 90 when each domain listed the token.
        self.assertGreater(finds, 0, calls)
        self.assertLess(finds, 10, f"{finds} searches for 30 domains: {calls}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
