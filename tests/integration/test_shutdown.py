"""Stopping dkimkeepd while a thread is still inside a token call.

A worker stuck in a hung C_Sign, or a rotation step waiting on a slow token,
must not keep the daemon from stopping, and the daemon must not finalize the
PKCS#11 module under that thread (SoftHSM frees what the thread is using: a
SIGSEGV, seen with a 1,000-key step and SIGTERM).  It waits a bounded time,
says in its log that it leaves the modules as they are, and exits 0 without
running C_Finalize or the module's library destructors.

Faults come from tests/p11fault in front of SoftHSM; no time is asserted
(bounds only end waits that would otherwise hang the test).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import EnvTestCase, wait_for
from test_failover import MSG, RingWorld

LEFT = "the token modules are left as they are (not finalized)"


class StopWithTokenCallRunning(EnvTestCase):
    def world(self, extra=""):
        w = RingWorld(self.e, fault=True, extra_daemon=extra)
        self.addCleanup(w.close)
        w.start()
        return w

    def test_stop_with_worker_in_hung_sign(self):
        w = self.world()
        w.rules("C_Sign hang token=dk-primary\n")
        # One request on the hung primary: the watchdog moves it to the standby
        # key after sign_timeout_ms and leaves the worker stuck in C_Sign.
        cp = w.sign(MSG)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        w.verify(cp.stdout, min_sigs=2)
        wait_for(lambda: w.token_states()["primary"] == "down", "the primary is down")
        rc, log = w.stop(timeout=120)
        self.assertEqual(rc, 0, log[-3000:])
        self.assertIn(LEFT, log)
        self.assertIn("dkimkeepd stopped", log)

    def test_stop_during_slow_rotation_step(self):
        w = self.world("step_interval = 1s\n")
        # Every search after start waits: the next rotation step blocks in one.
        before = w.stats().get("C_FindObjectsInit", 0)
        w.rules("C_FindObjectsInit hang\n")
        wait_for(lambda: w.stats().get("C_FindObjectsInit", 0) > before,
                 "a rotation step reaches the token and hangs in its search")
        rc, log = w.stop(timeout=120)
        self.assertEqual(rc, 0, log[-3000:])
        self.assertIn(LEFT, log)
        self.assertIn("dkimkeepd stopped", log)


if __name__ == "__main__":
    unittest.main()
