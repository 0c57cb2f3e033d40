"""Load and crash: a real dkimkeepd on SoftHSM tokens under many connections,
slow and vanishing clients, a descriptor limit lower than max_connections,
and kill -9 under load with the audit log on.

Every answer that counts is checked by dkimpy (in this process, daemon_harness
Dkimpy, DNS answered from `dkimkeep key dns --json`), never by dkimkeep alone.
No assertion is about time: bounds here only end a wait that would otherwise
hang the test.
"""
import json
import os
import resource
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, EnvTestCase, wait_for
from daemon_harness import (World, RawClient, Dkimpy, PipelinedLoad, frame, sign_request,
                            status_request, split_message, open_fds, nofile_limits)
from test_audit import records, sign_request_mid, msg as audit_msg

MSG = (b"From: Joe SixPack <joe@example.com>\r\nTo: Suzie Q <suzie@shopping.example.net>\r\n"
       b"Subject: load %d\r\nMessage-ID: <load-%d@example.com>\r\n\r\nHi.\r\n\r\n"
       b"We lost the game %d times.  Are you hungry yet?\r\n")


def message(i):
    return MSG % (i, i, i)


def raise_own_nofile(n):
    """This test process needs a descriptor per client connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            raise unittest.SkipTest(f"the test needs {n} descriptors; hard limit {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


WAIT = 120  # seconds one expected change may take here (wait_for)


class LoadCase(EnvTestCase):
    def world(self, extra_daemon="", **kw):
        kw.setdefault("algs", ("ed25519-sha256",))
        kw.setdefault("backup", False)
        w = World(self.e, queue=4096, extra_daemon=extra_daemon, **kw)
        self.dkimpy = Dkimpy(w.records)
        return w

    def status(self):
        return json.loads(self.e.cli("status", "--json").stdout)

    def assert_served(self, w, n=3):
        """The daemon is alive and signs for a new client; dkimpy verifies."""
        self.assertTrue(w.alive(), "daemon died")
        for i in range(n):
            c = RawClient(self.e.socket, timeout=120)
            m = message(900000 + i)
            c.send(frame(sign_request(1, *split_message(m))))
            self.assertIsNone(self.dkimpy.check(m, c.recv_response()))
            c.close()

    def sign_on(self, conns, base):
        """One request on each connection (all sent before any is read); the answers."""
        sent = []
        for k, c in enumerate(conns):
            try:
                c.send(frame(sign_request(base + k, *split_message(message(base + k)))))
                sent.append(True)
            except (BrokenPipeError, ConnectionResetError):  # refused and closed by the daemon
                sent.append(False)
        answers = []
        for ok, c in zip(sent, conns):
            try:
                answers.append(c.recv_response() if ok else None)
            except ConnectionResetError:
                answers.append(None)
        return answers

    def close_and_stop(self, w, conns):
        """Close the held connections; once the daemon has closed them too it serves
        new clients, and it stops with 0.  Its log."""
        for c in conns:
            c.close()
        wait_for(lambda: self.status()["connections"] == 1, "the held connections are closed",
                 timeout=WAIT)
        self.assert_served(w, n=5)
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        return err


class ThousandConnections(LoadCase):
    def test_thousand_held_and_served(self):
        """1,000 connections open at once, each signs twice; every answer verifies."""
        raise_own_nofile(1200)
        w = self.world(extra_daemon="max_connections = 1100\n")
        w.start()
        conns = [RawClient(self.e.socket, timeout=300) for _ in range(1000)]
        self.addCleanup(lambda: [c.close() for c in conns])
        wait_for(lambda: self.status()["connections"] >= 1001, "all 1,000 are accepted",
                 timeout=WAIT)
        for rnd in (0, 1):
            answers = self.sign_on(conns if rnd == 0 else conns[::-1], 10000 * (rnd + 1))
            bad = []
            for k, r in enumerate(answers):
                self.assertIsNotNone(r, f"connection {k} closed without an answer")
                self.assertEqual(r["id"], 10000 * (rnd + 1) + k)
                err = self.dkimpy.check(message(r["id"]), r)
                if err:
                    bad.append((k, err))
            self.assertEqual(bad, [], f"round {rnd}: {len(bad)} of 1000 answers not OK")
        st = self.status()
        self.assertGreaterEqual(st["connections"], 1001)
        self.assertGreaterEqual(st["requests"]["OK"], 2000)  # status requests count too
        self.assert_served(w)


class SlowAndVanishing(LoadCase):
    def test_slow_clients_while_others_served(self):
        """Clients sending a byte at a time do not hold up the others, and get their answers."""
        w = self.world()
        w.start()
        slow_answers, lock = {}, threading.Lock()

        def slow(k):
            m = message(5000 + k)
            data = frame(sign_request(5000 + k, *split_message(m)))
            c = RawClient(self.e.socket, timeout=300)
            for i in range(len(data)):
                c.send(data[i:i + 1])
                time.sleep(0.002)
            r = c.recv_response()
            c.close()
            with lock:
                slow_answers[k] = self.dkimpy.check(m, r)

        threads = [threading.Thread(target=slow, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        # Others are served while the slow ones trickle in (on one connection and on new ones).
        fast = RawClient(self.e.socket, timeout=120)
        served = 0
        while any(t.is_alive() for t in threads) or served < 50:
            m = message(20000 + served)
            fast.send(frame(sign_request(20000 + served, *split_message(m))))
            self.assertIsNone(self.dkimpy.check(m, fast.recv_response()))
            served += 1
            if served % 25 == 0:
                self.assert_served(w, n=1)
        for t in threads:
            t.join(timeout=300)
        self.assertEqual(slow_answers, {k: None for k in range(16)})
        fast.close()
        self.assert_served(w)

    def test_lagging_reader_gets_every_answer_whole(self):
        """A caller that pipelines hundreds of requests and reads nothing for a while:
        its socket fills, answers written in part go on through the loop's buffer,
        and every answer arrives whole (no torn or mixed frames); afterwards the
        connection serves one request at a time as before."""
        w = self.world(workers=2)
        w.start()
        c = RawClient(self.e.socket, timeout=120)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        n = 600
        msgs = {i: message(30000 + i) for i in range(n)}
        sender_err = []

        def send_all():
            try:
                for i in range(n):
                    c.send(frame(sign_request(30000 + i, *split_message(msgs[i]))))
            except OSError as e:
                sender_err.append(e)

        t = threading.Thread(target=send_all)
        t.start()
        time.sleep(3)  # not reading: the daemon's writes to this socket fill it
        self.assert_served(w, n=2)  # others meanwhile
        got = {}
        for _ in range(n):
            r = c.recv_response()
            self.assertIsNotNone(r, "the daemon closed the connection")
            self.assertEqual(r["status"], "OK", r)
            got[r["id"]] = r
        t.join(timeout=120)
        self.assertEqual(sender_err, [])
        self.assertEqual(sorted(got), [30000 + i for i in range(n)])
        for i in (0, 1, n // 2, n - 2, n - 1):
            self.assertIsNone(self.dkimpy.check(msgs[i], got[30000 + i]))
        for i in range(20):  # and one at a time again
            m = message(40000 + i)
            c.send(frame(sign_request(40000 + i, *split_message(m))))
            self.assertIsNone(self.dkimpy.check(m, c.recv_response()))
        c.close()

    def test_answers_sent_in_part_stay_whole(self):
        """The daemon's sockets take 100 bytes of an answer and then are full
        (tests/tools/short_send.c, preloaded into it): the rest of every answer,
        and the answers after it, go out through the loop's buffer in order, and
        a pipelining caller (its status requests answered by the loop itself
        among the signatures) and a one-at-a-time caller both get every answer
        whole, each exactly once."""
        shim = os.path.join(BUILD, "tests", "tools", "short_send.so")
        log = self.e.path("short_send.log")
        w = self.world(workers=2)
        asan = os.environ.get("ASAN_OPTIONS", "")
        w.start(env={"LD_PRELOAD": shim, "SHORT_SEND_MAX": "100", "SHORT_SEND_LOG": log,
                     # the shim comes before the sanitizer's runtime in a sanitized build
                     "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"})
        n = 400
        msgs = {i: message(50000 + i) for i in range(n)}
        # Status requests among them: answers the loop makes without a worker.
        status_ids = [80000 + i for i in range(0, n, 4)]
        c = RawClient(self.e.socket, timeout=120)
        got, errs = {}, []

        def read_all():
            try:
                for _ in range(n + len(status_ids)):
                    r = c.recv_response()
                    if r is None:
                        errs.append("the daemon closed the connection")
                        return
                    if r["id"] in got:
                        errs.append(f"answer {r['id']} twice")
                    got[r["id"]] = r
            except (OSError, ValueError) as e:  # ValueError: a torn frame fails to decode
                errs.append(repr(e))

        t = threading.Thread(target=read_all)
        t.start()
        for i in range(n):
            c.send(frame(sign_request(50000 + i, *split_message(msgs[i]))))
            if i % 4 == 0:
                c.send(frame(status_request(80000 + i)))
        one = RawClient(self.e.socket, timeout=120)
        for i in range(30):  # one at a time meanwhile, on another connection
            m = message(60000 + i)
            one.send(frame(sign_request(60000 + i, *split_message(m))))
            self.assertIsNone(self.dkimpy.check(m, one.recv_response()))
        t.join(timeout=300)
        self.assertFalse(t.is_alive(), "the answers did not all come")
        self.assertEqual(errs, [])
        self.assertEqual(sorted(got), [50000 + i for i in range(n)] + status_ids)
        for i in range(n):
            self.assertEqual(got[50000 + i]["status"], "OK", got[50000 + i])
            self.assertIsNone(self.dkimpy.check(msgs[i], got[50000 + i]))
        for rid in status_ids:
            self.assertEqual(got[rid]["status"], "OK", got[rid])
        c.close()
        one.close()
        # The loop's sends were cut short (the shim worked), and only the loop sends.
        with open(log) as f:
            cuts = f.read().split()
        self.assertGreater(cuts.count("dkimkeepd"), 0, set(cuts))
        self.assertEqual(set(cuts), {"dkimkeepd"})
        self.assertTrue(w.alive())

    def test_vanishing_clients(self):
        """Clients that send half a frame and go, or a whole request and go before the
        answer: others are served, and every such connection is closed (no leak)."""
        w = self.world(workers=2)
        w.start()
        self.assert_served(w, n=2)  # warm: the workers' sessions are open
        base_fds = open_fds(w.daemon.pid)
        m = message(1)
        req = frame(sign_request(1, *split_message(m)))
        for round_ in range(4):
            for k in range(50):
                c = RawClient(self.e.socket)
                kind = k % 4
                if kind == 0:  # half a frame header
                    c.send(req[:2])
                elif kind == 1:  # half a request
                    c.send(req[:len(req) // 2])
                elif kind == 2:  # the whole request, gone before the answer
                    c.send(req)
                else:  # several pipelined requests, gone, with a reset
                    c.send(req * 8)
                    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                c.close()
            self.assert_served(w, n=2)
        # Every vanished connection is closed by the daemon: the count and the
        # descriptors come back to where they were.
        wait_for(lambda: self.status()["connections"] == 1, "the vanished connections are closed",
                 timeout=WAIT)
        # 200 vanished connections: a leak would keep up to 200 more (a few may be
        # the token's or the sanitizer's own)
        wait_for(lambda: open_fds(w.daemon.pid) <= base_fds + 4, "the descriptors are freed",
                 timeout=WAIT)
        st = self.status()
        self.assertGreaterEqual(st["requests"]["OK"], 8)
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)


class DescriptorLimit(LoadCase):
    def test_soft_limit_raised_for_max_connections(self):
        """A soft RLIMIT_NOFILE below max_connections + 64 is raised (up to the hard limit)."""
        w = self.world(extra_daemon="max_connections = 1000\n")
        w.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096)))
        self.assertEqual(nofile_limits(w.daemon.pid), (1064, 4096))
        raise_own_nofile(600)
        conns = [RawClient(self.e.socket, timeout=300) for _ in range(400)]
        self.addCleanup(lambda: [c.close() for c in conns])
        answers = self.sign_on(conns, 1000)
        self.assertEqual([self.dkimpy.check(message(1000 + k), r) for k, r in enumerate(answers)],
                         [None] * 400)
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        self.assertIn("descriptor limit raised from 256 to 1064", err)

    def test_hard_limit_below_max_connections(self):
        """With only 128 descriptors (soft = hard) and max_connections 1024: the daemon
        warns, serves 64 connections, refuses the rest at once (no EMFILE busy loop),
        and serves new clients once connections close."""
        w = self.world()
        w.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)))
        self.assertEqual(nofile_limits(w.daemon.pid), (128, 128))
        conns = [RawClient(self.e.socket, timeout=120) for _ in range(200)]
        answers = self.sign_on(conns, 3000)
        ok = [k for k, r in enumerate(answers) if r is not None]
        for k in ok:
            self.assertIsNone(self.dkimpy.check(message(3000 + k), answers[k]))
        # the refused ones were closed (an answer None, not a hang); at most 64 served
        self.assertGreater(len(ok), 0)
        self.assertLessEqual(len(ok), 64)
        self.assertLessEqual(open_fds(w.daemon.pid), 128)
        err = self.close_and_stop(w, conns)
        self.assertIn("serving at most 64 connections", err)
        self.assertIn("max_connections (64) reached", err)
        self.assertNotIn("Too many open files", err)
        self.assertNotIn("accept()", err)

    def test_descriptors_run_out_under_the_limit(self):
        """Descriptors used by something else (here 90 inherited ones) leave fewer than the
        limit check at start counted on: accept() fails with EMFILE.  The listener pauses
        (one log line, not libevent's warning per failed accept() in a busy loop), the
        daemon stays up, and new clients are served once others close."""
        w = self.world()
        spare = [os.open("/dev/null", os.O_RDONLY) for _ in range(90)]
        self.addCleanup(lambda: [os.close(fd) for fd in spare])
        w.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)),
                pass_fds=spare)
        self.assertGreaterEqual(open_fds(w.daemon.pid), 90)
        conns = [RawClient(self.e.socket, timeout=120) for _ in range(60)]
        # the daemon accepts until its descriptors run out; the rest wait in the backlog
        wait_for(lambda: open_fds(w.daemon.pid) >= 127, "the daemon's descriptors run out",
                 timeout=WAIT)
        time.sleep(1)  # let the listener meet EMFILE a few times (pauses of 100 ms)
        self.assertTrue(w.alive(), "daemon died")
        err = self.close_and_stop(w, conns)
        self.assertIn("accept(): Too many open files", err)
        self.assertIn("out of descriptors: accepting pauses", err)
        self.assertNotIn("Error from accept() call", err)  # libevent's own busy-loop warning
        self.assertLessEqual(err.count("accept(): "), 2, err[-3000:])


class KillUnderLoad(LoadCase):
    def test_kill9_under_load_rings_and_audit_intact(self):
        """kill -9 while 8 clients sign (RSA and Ed25519, primary and backup tokens,
        audit on) and 100 idle connections are held: after a restart the rings are
        the same, status and signing work, `audit verify` passes, and every
        signature a client received has its record."""
        log = self.e.path("audit.jsonl")
        w = World(self.e, workers=2, queue=4096, extra_daemon=f"audit_log = {log}\n")
        self.dkimpy = Dkimpy(w.records)
        keys_before = json.loads(self.e.cli("key", "list", "--json").stdout)
        w.start()
        idle = [RawClient(self.e.socket) for _ in range(100)]
        hs, body = split_message(audit_msg("load-crash"))
        signed_base = audit_msg("load-crash")
        load = PipelinedLoad(
            self.e.socket, lambda rid: sign_request_mid(rid, hs, body), clients=8, depth=8,
            check=lambda r: self.dkimpy.check(signed_base, r) if r["id"] % 50 == 0 else None,
            timeout=30).start()
        receipts = load.receipts
        wait_for(lambda: len(receipts) >= 400, "400 signatures are received", timeout=300)
        w.daemon.send_signal(signal.SIGKILL)
        w.daemon.wait(timeout=60)
        load.stop(timeout=60)
        for c in idle:
            c.close()
        self.assertEqual(load.bad, [])
        self.assertGreaterEqual(len(receipts), 400)

        # The rings: same keys, same states; the daemon starts on its stale socket.
        self.assertEqual(json.loads(self.e.cli("key", "list", "--json").stdout), keys_before)
        w.start()
        st = self.status()
        self.assertEqual({t["name"]: t["state"] for t in st["tokens"]},
                         {"primary": "up", "backup": "up"})
        self.assertEqual(sorted((r["domain"], r["alg"], r["slot"]) for r in st["rings"]),
                         [("example.com", "ed25519-sha256", "primary"),
                          ("example.com", "rsa-sha256", "primary")])
        w.verify(w.sign(message(7)).stdout, min_sigs=2)
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)

        # The audit log: intact, and no received signature without its record.
        cp = self.e.cli("audit", "verify", "--json", log)
        self.assertTrue(json.loads(cp.stdout)["intact"])
        logged = {r["req"] for r in records(log) if r["event"] == "sign" and r["outcome"] == "ok"}
        missing = sorted(set(receipts) - logged)
        self.assertEqual(missing, [], f"{len(missing)} of {len(receipts)} receipts without a record")
        self.assertEqual(len([r for r in records(log) if r["event"] == "daemon.start"]), 2)


if __name__ == "__main__":
    unittest.main()
