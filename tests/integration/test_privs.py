"""dkimkeepd started as root gives root up: after binding the socket and logging
in to the tokens it becomes [daemon] user (initgroups, setresgid, setresuid),
sets no_new_privs and stays non-dumpable, and still signs (verified by dkimpy
and Mail::DKIM) and reloads.  The PIN files stay root's: the PIN is needed only
before the drop.  See docs/operator.md, "Running as its own user"."""
import glob
import os
import pwd
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import EnvTestCase, DATA, EX_CONFIG
from daemon_harness import World

TEST_USER = "dkimkeep-test"
MSG = open(sorted(glob.glob(os.path.join(DATA, "messages", "*.eml")))[0], "rb").read()


def test_user():
    """A system user for the daemon: made here if absent, else nobody."""
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        pass
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", TEST_USER],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        return pwd.getpwnam("nobody")


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


@unittest.skipUnless(os.geteuid() == 0, "needs root: dkimkeepd must start as root to drop it")
class DropToUser(EnvTestCase):

    def world(self, user=None, chown=True):
        w = World(self.e, extra_daemon=f"user = {user}\n" if user else "")
        pw = None
        if user:
            pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        # What the daemon uses after the drop: the token files (SoftHSM opens
        # and locks them for every session, rotation writes them) and the
        # config (SIGHUP).  The PIN files stay root's, mode 0600.
        os.chmod(self.e.dir, 0o711)
        os.chmod(self.e.conf, 0o644)
        if pw and chown:
            for root, dirs, files in os.walk(self.e.tokens):
                for n in dirs + files + [""]:
                    os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
        return w

    def test_drops_to_user_and_signs(self):
        pw = test_user()
        w = self.world(pw.pw_name)
        w.start()
        # The socket listens before the drop; an answer means the rings are
        # loaded, which happens after it.
        out = w.sign(MSG).stdout
        self.assertEqual(out.count(b"DKIM-Signature:"), 2)
        w.verify(out, min_sigs=2)
        pid = w.daemon.pid
        st = proc_status(pid)
        self.assertEqual(st["Uid"], [str(pw.pw_uid)] * 4, "real, effective, saved, fs uid")
        self.assertEqual(st["Gid"], [str(pw.pw_gid)] * 4, "real, effective, saved, fs gid")
        self.assertEqual(sorted(int(g) for g in st["Groups"]),
                         sorted(set(os.getgrouplist(pw.pw_name, pw.pw_gid))))
        self.assertEqual(st["NoNewPrivs"], ["1"])
        self.assertEqual(int(st["CapEff"][0], 16), 0)
        self.assertEqual(int(st["CapPrm"][0], 16), 0)
        # Not dumpable: the kernel gives its private /proc files to root (no ptrace,
        # no core, no reading its memory even as its own user).
        self.assertEqual(os.stat(f"/proc/{pid}/mem").st_uid, 0)
        self.assertEqual(os.stat(f"/proc/{pid}/environ").st_uid, 0)
        # Every thread, the workers started after the drop included, is the user.
        for tid in os.listdir(f"/proc/{pid}/task"):
            self.assertEqual(proc_status(f"{pid}/task/{tid}")["Uid"], [str(pw.pw_uid)] * 4)
        # The PIN file is unreadable to the daemon now; it was read once, as root.
        pin = self.e.path("primary.pin")
        self.assertEqual((os.stat(pin).st_uid, os.stat(pin).st_mode & 0o777), (0, 0o600))
        # A reload (config, key rings) works as the user.
        w.daemon.send_signal(signal.SIGHUP)
        out = w.sign(MSG).stdout
        w.verify(out, min_sigs=2)
        self.assertTrue(w.alive())
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        self.assertIn(f"running as user {pw.pw_name} (uid {pw.pw_uid}", err)
        self.assertNotIn("runs as root", err)

    def test_numeric_user(self):
        pw = test_user()
        w = self.world(str(pw.pw_uid))
        w.start()
        w.verify(w.sign(MSG).stdout, min_sigs=2)
        self.assertEqual(proc_status(w.daemon.pid)["Uid"], [str(pw.pw_uid)] * 4)
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)

    def test_root_without_user_warns(self):
        w = self.world(None)
        w.start()
        w.verify(w.sign(MSG).stdout, min_sigs=2)
        st = proc_status(w.daemon.pid)
        self.assertEqual(st["Uid"], ["0"] * 4)
        self.assertEqual(st["NoNewPrivs"], ["1"])
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        self.assertIn("WARNING: dkimkeepd runs as root", err)
        self.assertIn('add "user = dkimkeep" to [daemon]', err)

    def test_unknown_user_refused(self):
        w = World(self.e)  # the CLI refuses the config too: tokens and keys first
        with open(self.e.conf) as f:
            conf = f.read()
        self.e.write_config(conf.replace("[daemon]\n", "[daemon]\nuser = no-such-user-dkimkeep\n", 1))
        w.start(wait=False)
        rc = w.daemon.wait(timeout=60)
        err = w.daemon.stderr.read().decode(errors="replace")
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("user", err)
        self.assertIn("no-such-user-dkimkeep", err)
        self.assertFalse(os.path.exists(self.e.socket))

    def test_tokens_unreadable_to_the_user(self):
        """Token files left to root: the daemon sees fewer keys after the drop and
        stops at start, naming the token and what to do; it never signs as root."""
        pw = test_user()
        w = self.world(pw.pw_name, chown=False)
        w.start(wait=False)
        rc = w.daemon.wait(timeout=120)
        err = w.daemon.stderr.read().decode(errors="replace")
        self.assertEqual(rc, 77, err)  # EX_NOPERM
        self.assertIn('token "primary": user %s sees 0 of its 2 keys after dropping root'
                      % pw.pw_name, err)
        self.assertIn("Running as its own user", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
