"""dkimkeep-bench smoke test: a real daemon and token, one-second runs.

Checks that every documented field is there and sane.  No timing is asserted:
the figures depend on the machine and its load (see docs/performance.md).
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import EnvTestCase, prog, EX_OK, EX_USAGE, EX_UNAVAILABLE, EX_CONFIG
from daemon_harness import World

MESSAGE = ("From: Joe <joe@example.com>\r\nTo: Mary <mary@example.net>\r\n"
           "Subject: bench\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
           "Message-ID: <bench@example.com>\r\n\r\n"
           + "".join("body line %03d of the benchmark message\r\n" % i for i in range(90)))

FIELDS = ["alg", "clients", "workers", "seconds", "msgs_per_s", "p50_us", "p90_us", "p99_us",
          "max_us", "raw_sigs_per_s", "raw_p50_us", "ratio", "errors"]


class Bench(EnvTestCase):
    def setUp(self):
        super().setUp()
        self.w = World(self.e, domains=("example.com", "example.org"), backup=False)
        self.w.start()
        self.msg = self.e.write("msg.eml", MESSAGE)

    def bench(self, *args, check=EX_OK):
        argv = [prog("dkimkeep-bench"), "-c", self.e.conf, "--message", self.msg,
                "--seconds", "1", "--warmup", "0.2"] + list(args)
        return self.e.run(argv, check=check, timeout=120)

    def check_doc(self, d, alg, clients):
        for f in FIELDS:
            self.assertIn(f, d, f)
        self.assertEqual(d["alg"], alg)
        self.assertEqual(d["clients"], clients)
        self.assertEqual(d["workers"], 2)
        self.assertEqual(d["errors"], 0, d.get("errors_by_status"))
        self.assertEqual(d["errors_by_status"], {})
        for f in ("seconds", "msgs_per_s", "p50_us", "p90_us", "p99_us", "max_us",
                  "raw_sigs_per_s", "raw_p50_us", "ratio", "cpu_ratio", "raw_cpu_us_per_sig",
                  "client_cpu_us_per_msg"):
            self.assertIsInstance(d[f], (int, float), f)
            self.assertGreater(d[f], 0, f)
        self.assertLessEqual(d["p50_us"], d["p90_us"])
        self.assertLessEqual(d["p90_us"], d["p99_us"])
        self.assertLessEqual(d["p99_us"], d["max_us"])
        self.assertGreater(d["msgs"], 0)
        self.assertGreater(d["raw_sigs"], 0)
        self.assertEqual(d["raw_errors"], 0)
        self.assertEqual(d["raw_threads"], 2)  # the daemon's workers
        self.assertAlmostEqual(d["ratio"], d["msgs_per_s"] / d["raw_sigs_per_s"], delta=0.01)
        self.assertEqual(d["key"]["token"], "dk-primary")
        self.assertEqual(d["key"]["bits"], 2048 if alg == "rsa-sha256" else 255)
        self.assertEqual(d["daemon"]["pid"], self.w.daemon.pid)
        self.assertGreater(d["daemon"]["rss_kib"], 0)
        self.assertGreater(d["daemon"]["cpu_us_per_msg"], 0)

    def test_json_both_algorithms(self):
        for alg, clients in (("rsa-sha256", 2), ("ed25519-sha256", 3)):
            with self.subTest(alg=alg):
                cp = self.bench("--alg", alg, "--clients", str(clients), "--json", "-q")
                self.assertEqual(cp.stderr, b"")
                d = json.loads(cp.stdout)
                self.check_doc(d, alg, clients)
                self.assertEqual(d["domains"], 1)
                self.assertEqual(d["connections"], 0)
                self.assertEqual(d["rounds"], 1)

    def test_text_progress_domains_and_idle_connections(self):
        cp = self.bench("--alg", "ed25519", "--clients", "2", "--inflight", "2", "--domains", "2",
                        "--connections", "20")
        out = cp.stdout.decode()
        self.assertRegex(out, r"socket +[0-9.]+ msgs/s +p50=\d+ p90=\d+ p99=\d+ max=\d+ us +errors=0")
        self.assertRegex(out, r"raw +[0-9.]+ sigs/s +p50=\d+")
        self.assertRegex(out, r"(?m)^ratio=[0-9]+\.[0-9]{3}  cpu_ratio=[0-9]+\.[0-9]{3}$")
        err = cp.stderr.decode()
        self.assertIn("20 idle", err)
        self.assertIn("raw:", err)
        # The idle connections were really open: the daemon counted them.
        cp = self.bench("--alg", "ed25519", "--clients", "2", "--domains", "2",
                        "--connections", "20", "--json", "-q")
        d = json.loads(cp.stdout)
        self.check_doc(d, "ed25519-sha256", 2)
        self.assertEqual(d["domains"], 2)
        self.assertGreaterEqual(d["daemon"]["connections"], 22)

    def test_rounds(self):
        """--rounds alternates the halves; the sums still make one sane document."""
        cp = self.bench("--alg", "ed25519", "--clients", "2", "--rounds", "2", "--json")
        d = json.loads(cp.stdout)
        self.check_doc(d, "ed25519-sha256", 2)
        self.assertEqual(d["rounds"], 2)
        self.assertEqual(cp.stderr.decode().count("dkimkeep-bench: round "), 2)

    def test_no_raw(self):
        cp = self.bench("--alg", "rsa-sha256", "--clients", "1", "--no-raw", "--json", "-q")
        d = json.loads(cp.stdout)
        self.assertIsNone(d["ratio"])
        self.assertIsNone(d["cpu_ratio"])
        self.assertIsNone(d["raw_sigs_per_s"])
        self.assertGreater(d["msgs_per_s"], 0)
        self.assertEqual(d["errors"], 0)

    def test_usage_and_failures(self):
        b = prog("dkimkeep-bench")
        cp = self.e.run([b, "--help"], check=EX_OK)
        for word in (b"SYNOPSIS", b"--message", b"--alg", b"--clients", b"--seconds",
                     b"--warmup", b"--domains", b"--connections", b"--json", b"EXIT STATUS"):
            self.assertIn(word, cp.stdout)
        cp = self.e.run([b, "--version"], check=EX_OK)
        self.assertRegex(cp.stdout.decode(), r"^dkimkeep-bench \d+\.\d+\.\d+\n$")
        for args in ([], ["--message", self.msg], ["--alg", "rsa"],
                     ["--message", self.msg, "--alg", "dsa"],
                     ["--message", self.msg, "--alg", "rsa", "--clients", "0"],
                     ["--message", self.msg, "--alg", "rsa", "--seconds", "x"]):
            with self.subTest(args=args):
                cp = self.e.run([b, "-c", self.e.conf] + args, check=EX_USAGE)
                self.assertEqual(cp.stdout, b"")
                self.assertTrue(cp.stderr.startswith(b"dkimkeep-bench: "), cp.stderr)
        # More domains than the config has: a config problem, said so.
        cp = self.bench("--alg", "rsa", "--domains", "3", check=EX_CONFIG)
        self.assertIn(b"fewer than --domains 3", cp.stderr)
        # No daemon at the socket.
        cp = self.bench("--alg", "rsa", "--socket", self.e.path("nothing.sock"),
                        check=EX_UNAVAILABLE)
        self.assertEqual(cp.stdout, b"")
        self.assertIn(b"nothing.sock", cp.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
