"""dkimkeepd end to end: a real SoftHSM token, the real daemon, dkimkeep sign,
and independent verifiers (dkimpy; Mail::DKIM for RSA)."""
import glob
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (EnvTestCase, prog, DATA, EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE,
                     EX_TEMPFAIL, EX_NOPERM, EX_CONFIG)
from daemon_harness import World, RawClient, frame, sign_request, split_message, pb_field

CORPUS = sorted(glob.glob(os.path.join(DATA, "messages", "*.eml")))


class SignCorpus(EnvTestCase):
    """Every corpus message, signed with RSA and Ed25519 together, verifies."""

    def test_corpus(self):
        w = World(self.e)
        w.start()
        self.assertGreaterEqual(len(CORPUS), 15)
        msgs = [(os.path.basename(p), open(p, "rb").read()) for p in CORPUS]
        big = (b"From: joe@example.com\r\nTo: a@example.net\r\nSubject: 2 MB\r\n\r\n"
               + b"".join(b"line %07d %s\r\n" % (i, b"z" * 60) for i in range(28000)))
        msgs.append(("2mb-body", big))
        for name, msg in msgs:
            with self.subTest(msg=name):
                cp = w.sign(msg)
                out = cp.stdout
                self.assertEqual(out.count(b"DKIM-Signature:"), 2, name)
                # Nothing else changed: the original follows the signatures byte for byte.
                self.assertTrue(out.endswith(msg), name)
                prefix = out[:len(out) - len(msg)]
                self.assertIn(b"a=rsa-sha256", prefix)
                self.assertIn(b"a=ed25519-sha256", prefix)
                # Signature headers use the message's own line ends.
                if b"\r\n" not in msg:
                    self.assertNotIn(b"\r", prefix, name)
                w.verify(out, min_sigs=2)

    def test_subdomain_from_signs_with_parent(self):
        w = World(self.e)
        w.start()
        msg = open(os.path.join(DATA, "messages", "13-subdomain-from.eml"), "rb").read()
        out = w.sign(msg).stdout
        self.assertIn(b"d=example.com;", out.replace(b"\r\n\t", b" "))
        w.verify(out, min_sigs=2)

    def test_options(self):
        w = World(self.e)
        w.start()
        msg = open(CORPUS[0], "rb").read()
        now = int(time.time())
        out = w.sign(msg, "--alg", "ed25519-sha256", "--timestamp", str(now),
                     "--expire", "3600", "--identity", "joe@example.com",
                     "--headers", "from:to:subject").stdout
        unfolded = out.replace(b"\r\n\t", b"").replace(b"\r\n ", b"")
        self.assertEqual(out.count(b"DKIM-Signature:"), 1)
        self.assertIn(b"a=ed25519-sha256", unfolded)
        self.assertIn(b"t=%d;" % now, unfolded)
        self.assertIn(b"x=%d;" % (now + 3600), unfolded)
        self.assertIn(b"i=joe@example.com;", unfolded)
        self.assertRegex(unfolded, rb"h=from:to:subject[:;]")
        w.verify(out)
        # --simple gives c=simple/simple, and verifies too
        out = w.sign(msg, "--simple").stdout
        self.assertIn(b"c=simple/simple", out)
        w.verify(out, min_sigs=2)

    def test_large_body_streamed(self):
        """A 50 MB message is hashed in chunks, not sent to the daemon (frames are 1 MiB max)."""
        w = World(self.e, algs=("ed25519-sha256",), backup=False)
        w.start()
        path = self.e.path("big.eml")
        with open(path, "wb") as f:
            f.write(b"From: joe@example.com\r\nTo: a@example.net\r\nSubject: 50MB\r\n\r\n")
            line = b"0123456789" * 10 + b"\r\n"
            for _ in range(50 * 1024 * 1024 // len(line)):
                f.write(line)
        out_path = self.e.path("big.signed")
        with open(path, "rb") as fin, open(out_path, "wb") as fout:
            rc = subprocess.run([prog("dkimkeep"), "-c", self.e.conf, "sign"], stdin=fin,
                                stdout=fout, stderr=subprocess.PIPE, env=self.e.env, timeout=300)
        self.assertEqual(rc.returncode, 0, rc.stderr)
        with open(out_path, "rb") as f:
            head = f.read(8192)
        prefix = head.index(b"From: joe@example.com")
        self.assertEqual(head[:prefix].count(b"DKIM-Signature:"), 1)
        self.assertEqual(os.path.getsize(out_path), prefix + os.path.getsize(path))
        with open(out_path, "rb") as f:
            w.verify(f.read())


class Refusals(EnvTestCase):
    def setUp(self):
        super().setUp()
        self.w = World(self.e)
        self.w.start()

    def refused(self, msg, code, *args, pattern=None):
        cp = self.w.sign(msg, *args, check=code)
        self.assertEqual(cp.stdout, b"", "nothing on stdout on failure")
        lines = cp.stderr.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, cp.stderr)
        if pattern:
            self.assertRegex(lines[0], pattern)
        return lines[0]

    def test_bad_messages(self):
        self.refused(b"To: a@example.net\r\nSubject: x\r\n\r\nbody\r\n", EX_DATAERR, pattern="From")
        self.refused(b"From: a@example.com\r\nFrom: b@example.com\r\n\r\nbody\r\n", EX_DATAERR,
                     pattern="more than one From")
        self.refused(b"\r\nthis has no header section\r\n", EX_DATAERR, pattern="not a message")
        self.refused(b"", EX_DATAERR, pattern="empty")
        self.refused(b"this is not a header line at all\r\n\r\nbody\r\n", EX_DATAERR)
        huge = b"From: a@example.com\r\n" + b"".join(
            b"X-Filler-%06d: %s\r\n" % (i, b"f" * 100) for i in range(12000)) + b"\r\nbody\r\n"
        self.refused(huge, EX_DATAERR, pattern="too large|over 1 MiB")
        self.assertTrue(self.w.alive())

    def test_unknown_domain_and_not_allowed(self):
        msg = b"From: someone@elsewhere.org\r\nTo: a@example.net\r\n\r\nhi\r\n"
        self.refused(msg, EX_NOPERM, pattern="elsewhere.org")
        self.refused(open(CORPUS[0], "rb").read(), EX_NOPERM, "--domain", "other.example",
                     pattern="other.example")

    def test_bad_usage(self):
        self.refused(open(CORPUS[0], "rb").read(), EX_USAGE, "--alg", "rsa-sha1")
        self.refused(open(CORPUS[0], "rb").read(), EX_USAGE, "--bogus")

    def test_daemon_down(self):
        self.w.stop()
        line = self.refused(open(CORPUS[0], "rb").read(), EX_UNAVAILABLE)
        self.assertIn("running", line)
        cp = self.e.cli("status", check=EX_UNAVAILABLE)
        self.assertEqual(cp.stdout, b"")


class Authorization(EnvTestCase):
    def test_unknown_uid_is_refused(self):
        """A caller whose uid matches no [client] gets 77 (SO_PEERCRED)."""
        w = World(self.e, socket_mode="0666")
        os.chmod(self.e.dir, 0o711)
        w.start()
        nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                  prog("dkimkeep"), "sign", "--socket", self.e.socket]
        cp = self.e.run(nobody, input=open(CORPUS[0], "rb").read())
        self.assertEqual(cp.returncode, EX_NOPERM, cp.stderr)
        self.assertEqual(cp.stdout, b"")
        self.assertIn(b"no [client]", cp.stderr)
        # the same message from an authorized uid signs
        w.verify(w.sign(open(CORPUS[0], "rb").read()).stdout, min_sigs=2)

    def test_mta_user_signs_without_reaching_the_pin_files(self):
        """An MTA's own user runs "dkimkeep -c CONF sign" (and status) with the daemon's
        config: it needs the socket, not the PIN files, which sit where it cannot look."""
        w = World(self.e, socket_mode="0666", client=False,
                  extra="[client mta]\nuid = nobody\ndomains = *\n")
        pins = self.e.path("pins")
        os.mkdir(pins, 0o700)
        with open(self.e.conf) as f:
            text = f.read()
        for name in ("primary.pin", "backup.pin"):
            os.rename(self.e.path(name), os.path.join(pins, name))
            text = text.replace(self.e.path(name), os.path.join(pins, name))
        self.e.write_config(text)
        os.chmod(self.e.dir, 0o711)
        w.start()
        nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                  prog("dkimkeep"), "-c", self.e.conf]
        cp = self.e.run(nobody + ["sign"], input=open(CORPUS[0], "rb").read())
        self.assertEqual(cp.returncode, EX_OK, cp.stderr)
        w.verify(cp.stdout, min_sigs=2)
        cp = self.e.run(nobody + ["status"])
        self.assertEqual(cp.returncode, EX_OK, cp.stderr)
        self.assertIn(b"example.com", cp.stdout)
        # commands that open the token still examine the PIN files
        cp = self.e.run(nobody + ["key", "list"])
        self.assertEqual(cp.returncode, EX_CONFIG, cp.stderr)
        self.assertIn(b"primary.pin", cp.stderr)

    def test_client_limited_to_its_domains(self):
        w = World(self.e, domains=("example.com", "example.org"), client=False,
                  extra=f"[client narrow]\nuid = {os.getuid()}\ndomains = example.org\n")
        w.start()
        msg = open(CORPUS[0], "rb").read()  # From: example.com
        cp = w.sign(msg, check=EX_NOPERM)
        self.assertIn(b"may not sign for example.com", cp.stderr)
        out = w.sign(msg, "--domain", "example.org").stdout
        w.verify(out, min_sigs=2)


class Status(EnvTestCase):
    def test_status_json(self):
        import json
        w = World(self.e)
        w.start()
        w.sign(open(CORPUS[0], "rb").read())
        st = json.loads(self.e.cli("status", "--json").stdout)
        self.assertEqual({t["name"]: t["state"] for t in st["tokens"]},
                         {"primary": "up", "backup": "up"})
        self.assertEqual(sorted((r["domain"], r["alg"], r["slot"]) for r in st["rings"]),
                         [("example.com", "ed25519-sha256", "primary"),
                          ("example.com", "rsa-sha256", "primary")])
        self.assertEqual(st["requests"]["OK"], 1)
        self.assertEqual(st["workers"], 2)
        self.assertEqual(st["queue_depth"], 0)
        text = self.e.run([prog("dkimkeep"), "status", "--socket", self.e.socket], check=0)
        self.assertIn(b"example.com", text.stdout)

    def test_many_rings_without_standby_told_in_few_lines(self):
        """A load with many rings lacking keys names the first 10 and counts the rest in
        one line (1,000 domains gave 1,000 warnings per start and reload)."""
        domains = tuple(f"d{k:02d}.example" for k in range(14))
        w = World(self.e, domains=domains, algs=("ed25519-sha256",), backup=False, client=False,
                  extra=f"[client tests]\nuid = {os.getuid()}\ndomains = *\n")
        w.start()
        w.verify(w.sign(b"From: a@d13.example\r\nTo: b@example.net\r\nSubject: s\r\n\r\nx\r\n")
                 .stdout)
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        told = [l for l in err.splitlines() if "has no standby ed25519-sha256 key" in l]
        self.assertEqual(len(told), 10, err)
        self.assertIn("4 more key rings have missing or unloaded keys (only the first 10 are "
                      "told above)", err)


def thread_switches(pid, name):
    """Voluntary context switches (sleeps) so far of the thread of pid called name."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() != name:
                continue
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    raise AssertionError(f"no thread {name} in process {pid}")


class Idle(EnvTestCase):
    def test_watchdog_sleeps_while_nothing_is_signed(self):
        """The watchdog looks at the workers every 50 ms only while one holds a job: an
        idle daemon's watchdog thread stays asleep (it woke 20 times a second), and the
        next request wakes it (its rescue of a hung signature: test_failover)."""
        w = World(self.e)
        w.start()
        msg = open(CORPUS[0], "rb").read()
        w.verify(w.sign(msg).stdout)
        before = thread_switches(w.daemon.pid, "dkd-watchdog")
        time.sleep(2)
        idle = thread_switches(w.daemon.pid, "dkd-watchdog") - before
        self.assertLessEqual(idle, 2, f"the idle watchdog woke {idle} times in 2 s")
        w.verify(w.sign(msg).stdout)
        after = thread_switches(w.daemon.pid, "dkd-watchdog")
        self.assertGreater(after, before + idle, "a request did not wake the watchdog")


class Abuse(EnvTestCase):
    """Bad peers never crash the daemon, and everyone else keeps being served."""

    def setUp(self):
        super().setUp()
        self.w = World(self.e, algs=("ed25519-sha256",), backup=False, queue=4096)
        self.w.start()
        self.msg = open(CORPUS[0], "rb").read()
        self.hdr, self.body = split_message(self.msg)

    def served(self):
        self.assertTrue(self.w.alive(), "daemon died")
        self.w.verify(self.w.sign(self.msg).stdout)

    def test_huge_length(self):
        c = RawClient(self.e.socket)
        c.send(b"\xff\xff\xff\xff" + b"x" * 100)
        self.assertIsNone(c.recv_response(), "connection closed on an oversized frame")
        self.served()

    def test_random_bytes(self):
        for seed in range(20):
            c = RawClient(self.e.socket, timeout=5)
            data = os.urandom(64 + seed * 37)
            try:
                c.send(data)
                c.s.shutdown(socket.SHUT_WR)
                while c.recv_response() is not None:
                    pass
            except (OSError, ValueError, IndexError):
                pass
            c.close()
        self.served()

    def test_garbage_protobuf(self):
        c = RawClient(self.e.socket)
        c.send(frame(b"\x0a\xff\xff\xff\xff\x0f garbage"))
        r = c.recv_response()
        self.assertEqual(r["status"], "BAD_REQUEST")
        c.send(frame(b""))  # an empty Request: neither sign nor status
        self.assertEqual(c.recv_response()["status"], "BAD_REQUEST")
        # absurd fields: a 2-algorithm list of unknown values, an over-long domain, a bad hash
        c.send(frame(pb_field(1, 7) + pb_field(2, pb_field(3, 99) + pb_field(8, self.hdr))))
        r = c.recv_response()
        self.assertEqual((r["id"], r["status"]), (7, "BAD_REQUEST"))
        c.send(frame(pb_field(1, 8) + pb_field(2, pb_field(1, "a" * 5000) + pb_field(8, self.hdr))))
        self.assertEqual(c.recv_response()["status"], "BAD_REQUEST")
        c.send(frame(pb_field(1, 9) + pb_field(2, pb_field(8, self.hdr) + pb_field(9, b"short"))))
        self.assertEqual(c.recv_response()["status"], "BAD_REQUEST")
        # the same connection still signs
        c.send(frame(sign_request(10, self.hdr, self.body)))
        r = c.recv_response()
        self.assertEqual((r["id"], r["status"]), (10, "OK"))
        self.served()

    def test_truncated_frame_then_silence(self):
        c = RawClient(self.e.socket)
        c.send(struct_len(1000) + b"partial")
        self.served()  # others are served while this one stalls
        c.close()

    def test_idle_connections(self):
        conns = [RawClient(self.e.socket) for _ in range(500)]
        self.served()
        import json
        st = json.loads(self.e.cli("status", "--json").stdout)
        self.assertGreaterEqual(st["connections"], 500)
        for c in conns:
            c.close()

    def test_client_that_never_reads(self):
        c = RawClient(self.e.socket)
        req = frame(sign_request(1, self.hdr, self.body))
        c.s.setblocking(False)
        sent = 0
        try:
            for _ in range(3000):
                c.s.send(req)
                sent += 1
        except BlockingIOError:
            pass
        self.served()
        c.close()
        self.served()

    def test_pipelined_thousand(self):
        c = RawClient(self.e.socket, timeout=120)
        reqs = b"".join(frame(sign_request(1000 + i, self.hdr, self.body)) for i in range(1000))
        c.send(reqs)
        seen = set()
        for _ in range(1000):
            r = c.recv_response()
            self.assertIsNotNone(r)
            self.assertEqual(r["status"], "OK", r["error"])
            self.assertEqual(len(r["sigs"]), 1)
            seen.add(r["id"])
        self.assertEqual(seen, set(range(1000, 2000)))


def struct_len(n):
    import struct
    return struct.pack(">I", n)


class Busy(EnvTestCase):
    def test_full_queue_answers_busy(self):
        w = World(self.e, algs=("rsa-sha256",), backup=False, workers=1, queue=1)
        w.start()
        hdr, body = split_message(open(CORPUS[0], "rb").read())
        conns = [RawClient(w.e.socket, timeout=120) for _ in range(4)]
        for k, c in enumerate(conns):
            c.send(b"".join(frame(sign_request(k * 1000 + i, hdr, body)) for i in range(100)))
        counts = {}
        for c in conns:
            for _ in range(100):
                r = c.recv_response()
                counts[r["status"]] = counts.get(r["status"], 0) + 1
        self.assertEqual(sum(counts.values()), 400)
        self.assertGreater(counts.get("BUSY", 0), 0, counts)
        self.assertGreater(counts.get("OK", 0), 0, counts)
        # dkimkeep sign maps BUSY to 75 (EX_TEMPFAIL): keep the queue full from four
        # connections that send without pause, and try until a sign lands on a full queue.
        stop = threading.Event()

        def flood(c, base):
            i = 0
            while not stop.is_set():
                c.send(b"".join(frame(sign_request(base + i + k, hdr, body)) for k in range(20)))
                for _ in range(20):
                    if c.recv_response() is None:
                        return
                i += 20

        threads = [threading.Thread(target=flood, args=(c, (k + 1) * 100000)) for k, c in enumerate(conns)]
        for t in threads:
            t.start()
        busy_seen = False
        try:
            for attempt in range(40):
                cp = w.sign(open(CORPUS[0], "rb").read(), check=None)
                if cp.returncode == EX_TEMPFAIL:
                    self.assertEqual(cp.stdout, b"")
                    self.assertIn(b"BUSY", cp.stderr)
                    busy_seen = True
                    break
                self.assertEqual(cp.returncode, 0, cp.stderr)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        self.assertTrue(busy_seen, "dkimkeep sign never saw BUSY with a full queue")


class Shutdown(EnvTestCase):
    def test_sigterm_answers_queued(self):
        w = World(self.e, algs=("rsa-sha256",), backup=False, workers=1)
        w.start()
        hdr, body = split_message(open(CORPUS[0], "rb").read())
        c = RawClient(w.e.socket, timeout=120)
        c.send(b"".join(frame(sign_request(i + 1, hdr, body)) for i in range(200)))
        time.sleep(0.2)
        w.daemon.send_signal(signal.SIGTERM)
        got = []
        while True:
            r = c.recv_response()
            if r is None:
                break
            got.append(r)
        rc = w.daemon.wait(timeout=60)
        self.assertEqual(rc, 0)
        self.assertGreater(len(got), 0)
        self.assertTrue(all(r["status"] == "OK" for r in got), got[:3])
        # every request the daemon had read was answered: ids form a prefix 1..n
        self.assertEqual(sorted(r["id"] for r in got), list(range(1, len(got) + 1)))
        self.assertFalse(os.path.exists(w.e.socket), "socket removed at exit")

    def test_stale_socket_replaced_live_refused(self):
        w = World(self.e, algs=("ed25519-sha256",), backup=False)
        w.start()
        second = self.e.run([prog("dkimkeepd"), "-c", self.e.conf, "-f"], check=None, timeout=30)
        self.assertNotEqual(second.returncode, 0)
        self.assertIn(b"in use by a running dkimkeepd", second.stderr)
        w.stop(signal.SIGKILL)
        self.assertTrue(os.path.exists(self.e.socket))  # stale after kill -9
        w.start()
        w.verify(w.sign(open(CORPUS[0], "rb").read()).stdout)

    def test_check_and_bad_config(self):
        World(self.e, algs=("ed25519-sha256",), backup=False)
        cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf, "--check"], check=0)
        self.assertIn(b"configuration OK", cp.stdout)
        with open(self.e.conf, "a") as f:
            f.write("[daemon2]\nfoo = bar\n")
        cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf, "--check"], check=EX_CONFIG)
        self.assertRegex(cp.stderr.decode(), r"dkimkeep\.conf:\d+")


class Reload(EnvTestCase):
    def test_sighup_reloads_clients_and_keeps_running_on_bad_config(self):
        w = World(self.e, domains=("example.com", "example.org"), client=False,
                  extra=f"[client narrow]\nuid = {os.getuid()}\ndomains = example.org\n")
        w.start()
        msg = open(CORPUS[0], "rb").read()  # From: example.com
        w.sign(msg, "--socket", self.e.socket, check=EX_NOPERM)
        good = open(self.e.conf).read().replace("domains = example.org\n",
                                                "domains = example.org, example.com\n")
        # A bad config on SIGHUP is refused and the running one stays.
        self.e.write_config(good + "[nonsense]\nkey = value\n")
        w.daemon.send_signal(signal.SIGHUP)
        time.sleep(1)
        self.assertTrue(w.alive())
        w.sign(msg, "--socket", self.e.socket, check=EX_NOPERM)
        self.e.write_config(good)
        w.daemon.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while True:
            cp = w.sign(msg, "--socket", self.e.socket, check=None)
            if cp.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        w.verify(cp.stdout, min_sigs=2)
        rc, err = w.stop()
        self.assertEqual(rc, 0)
        self.assertIn("reload refused", err)
        self.assertIn("[nonsense]", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
