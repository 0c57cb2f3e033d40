"""Key rotation end to end: SoftHSM tokens, the real dkimkeepd under signing load,
and a real knot DNS server taking RFC 2136 updates (TSIG) and answering lookups.
Every signature is verified by dkimpy against the record knot serves at that moment."""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (EnvTestCase, prog, p11fault_path, SOFTHSM, EX_USAGE, EX_DATAERR, EX_TEMPFAIL)
from daemon_harness import World
from rotation_harness import (Knot, Load, ZONE, MSG, daemon_log, keys, notifications,
                              rotation_config, selectors_of, signing_keys, start_daemon,
                              verify_live, wait_for)

STEP = "step_interval = 1s\n"
FAST = "rotate_every = 1d\npublish_wait = 2s\nretire_after = 2s\ndestroy_after = 2s\n"


def record_state(knot, name):
    vals = knot.txt(name)
    if not vals:
        return "absent"
    return "revoked" if vals[0].replace(" ", "").endswith("p=") else "key"


class Watch:
    """Samples the records of some names while a rotation runs: the sequence of states."""

    def __init__(self, knot, names):
        self.knot, self.seq = knot, {n: [] for n in names}

    def sample(self):
        for n, seq in self.seq.items():
            s = record_state(self.knot, n)
            if not seq or seq[-1] != s:
                seq.append(s)


class FullRotation(EnvTestCase):
    def test_rotation_under_load(self):
        """rfc2136: pending -> active -> retiring -> revoked -> destroyed with the daemon
        signing all along; 0 failed requests, every signature verifies live."""
        e = self.e
        w = World(e, extra_daemon=STEP)
        knot = Knot(e, w.refresh_records())
        rotation_config(e, knot, FAST + "dns_publish = rfc2136\n")
        old = signing_keys(e)
        start_daemon(w)
        self.addCleanup(lambda: self.failed() and print(daemon_log(e)[-20000:]))
        load = Load(e, knot, e.socket).start()
        try:
            wait_for(lambda: load.seen([old[("rsa-sha256", "primary")],
                                        old[("ed25519-sha256", "primary")]]), "signing with the old keys")
            ev = json.loads(e.cli("key", "rotate", "--domain", ZONE, "--json").stdout)
            pend = {x["alg"]: x["selector"] for x in ev if x["event"] == "started"}
            self.assertEqual(set(pend), {"rsa-sha256", "ed25519-sha256"})
            old_names = [f"{old[(a, 'primary')]}._domainkey.{ZONE}" for a in pend]
            watch = Watch(knot, old_names)

            def done():
                watch.sample()
                sels = {k["selector"] for k in keys(e)}
                return (load.seen(list(pend.values()))
                        and not sels & {old[(a, "primary")] for a in pend}
                        and all(s[-1] == "absent" for s in watch.seq.values()))
            wait_for(done, "the new keys sign and the old ones are destroyed", step=0.2)
            # The new keys sign with the new selectors, and only them.
            mark = len(load.results)
            wait_for(lambda: len(load.results) > mark + 4, "more signatures")
        finally:
            results = load.finish()
        self.assertEqual(load.failures(), [], f"{len(load.failures())} of {len(results)} failed")
        self.assertGreater(len(results), 20)
        self.assertEqual(set(results[-1]["selectors"]), set(pend.values()))
        for n, seq in watch.seq.items():
            self.assertEqual(seq, ["key", "revoked", "absent"], n)
        # Standby keys untouched; DNS agrees with the tokens.
        self.assertEqual({a: s for a, s in signing_keys(e).items() if a[1] == "backup"},
                         {a: s for a, s in old.items() if a[1] == "backup"})
        e.cli("dns", "check")
        # The operator was told every step: event, domain, then selector, state and time.
        events = [(ev, dom, text) for ev, dom, text in notifications(e)]
        for step in ("rotation.activated", "rotation.retired", "rotation.revoked", "rotation.destroyed"):
            hits = [t for ev, d, t in events if ev == step and d == ZONE]
            self.assertTrue(hits, f"no {step} notification: {events}")
            self.assertRegex(hits[0], r"selector=\S+ alg=\S+ slot=\S+ state=\S+ time=\d{4}-")
        w.daemon.send_signal(signal.SIGTERM)
        self.assertEqual(w.daemon.wait(timeout=60), 0, daemon_log(e)[-5000:])

    def test_scheduled_rotation_standby_offset(self):
        """rotate_every makes the daemon rotate on its own, the standby keys too, never in
        both slots of the domain at once."""
        e = self.e
        w = World(e, algs=("ed25519-sha256",), extra_daemon=STEP)
        knot = Knot(e, w.refresh_records())
        rotation_config(e, knot, "rotate_every = 6s\npublish_wait = 2s\nretire_after = 1s\n"
                        "destroy_after = 1s\ndns_publish = rfc2136\n")
        first = signing_keys(e)
        start_daemon(w)
        load = Load(e, knot, e.socket, threads=1).start()
        both = []
        try:
            def rotated():
                ks = keys(e)
                slots = {k["slot"] for k in ks if k["state"] == "pending"}
                if len(slots) > 1:
                    both.append(ks)
                now = signing_keys(e)
                return all(now.get(a) not in (None, s) for a, s in first.items())
            wait_for(rotated, "both the active and the standby key rotated", step=0.3)
        finally:
            load.finish()
        self.assertEqual(both, [], "active and standby keys were rotating at the same time")
        self.assertEqual(load.failures(), [])


class PublishCommand(EnvTestCase):
    def test_command_hook_and_failures(self):
        """dns_publish = command: the hook publishes through knsupdate; a failing hook and a
        refused update stall the step (exit 75, alert) while the old key keeps signing."""
        e = self.e
        w = World(e, algs=("rsa-sha256",), backup=False, extra_daemon=STEP)
        knot = Knot(e, w.refresh_records())
        calls = e.path("hook.calls")
        hook = e.write("publish.sh", f"""#!/bin/sh
# NAME VALUE add|revoke|delete, published with knsupdate and the TSIG key.
echo "$3 $1" >> {calls}
[ -e {e.path('hook.fail')} ] && exit 3
alg=$(cut -d' ' -f2 {knot.tsig_file}); name=$(cut -d' ' -f1 {knot.tsig_file}); sec=$(cut -d' ' -f3 {knot.tsig_file})
{{ echo "server 127.0.0.1 {knot.port}"; echo "zone {ZONE}."
  echo "update delete $1. TXT"
  if [ "$3" != delete ]; then
    printf 'update add %s. 60 TXT' "$1"
    v="$2"; while [ -n "$v" ]; do printf ' "%s"' "$(printf %s "$v" | cut -c1-200)"; v=$(printf %s "$v" | cut -c201-); done
    [ -z "$2" ] && printf ' ""'
    echo
  fi
  echo send; }} | knsupdate -y "$alg:$name:$sec"
""", 0o755)
        rotation_config(e, knot, "publish_wait = 0\nretire_after = 0\ndestroy_after = 0\n"
                        "dns_publish = command\n", dns_extra=f"publish_command = {hook}\n")
        old = signing_keys(e)[("rsa-sha256", "primary")]
        # A failing hook: the rotation starts but cannot publish; exit 75 and an alert.
        e.write("hook.fail", "")
        cp = e.cli("key", "rotate", "--domain", ZONE, check=None)
        self.assertEqual(cp.returncode, 69, cp.stderr)
        cp = e.cli("key", "step", check=EX_TEMPFAIL)
        self.assertIn("publish-failed", cp.stdout.decode())
        self.assertEqual(signing_keys(e)[("rsa-sha256", "primary")], old)
        # The hook works again: the next steps finish the rotation through it.
        os.unlink(e.path("hook.fail"))
        e.cli("key", "step")
        new = signing_keys(e)[("rsa-sha256", "primary")]
        self.assertNotEqual(new, old)
        # Revoked once every daemon has had two step intervals to reload, then destroyed.
        wait_for(lambda: e.cli("key", "step").returncode == 0
                 and old not in {k["selector"] for k in keys(e)}, "the old key is destroyed")
        self.assertEqual(knot.txt(f"{old}._domainkey.{ZONE}"), [])
        e.cli("dns", "check")
        with open(calls) as f:
            acts = [line.split()[0] for line in f]
        for a in ("add", "revoke", "delete"):
            self.assertIn(a, acts)
        # An update refused by the server (wrong TSIG secret) stalls the same way.
        with open(e.conf) as f:
            text = f.read()
        bad = e.write("bad.key", "dkimkeep. hmac-sha256 " + "A" * 44 + "\n", 0o600)
        e.write_config(text.replace("dns_publish = command", "dns_publish = rfc2136")
                       .replace(f"tsig_key_file = {knot.tsig_file}", f"tsig_key_file = {bad}"))
        cp = e.cli("key", "rotate", "--domain", ZONE, check=None)
        self.assertIn(cp.returncode, (69, 77), cp.stderr)
        self.assertEqual(signing_keys(e)[("rsa-sha256", "primary")], new)

    def test_manual_prints_and_waits_for_dns(self):
        """dns_publish = manual: the record to publish is printed, and the key never signs
        before DNS serves it."""
        e = self.e
        w = World(e, algs=("ed25519-sha256",), backup=False)
        knot = Knot(e, w.refresh_records())
        rotation_config(e, knot, "publish_wait = 0\ndns_publish = manual\n")
        old = signing_keys(e)[("ed25519-sha256", "primary")]
        out = e.cli("key", "rotate", "--domain", ZONE, "--json").stdout
        ev = json.loads(out)
        manual = [x for x in ev if x["event"] == "publish-manual"]
        self.assertEqual(len(manual), 1, out)
        name, value = manual[0]["name"], manual[0]["value"]
        # Not in DNS: the old key keeps signing; past publish_wait the step alerts (exit 75).
        time.sleep(1.1)
        cp = e.cli("key", "step", check=EX_TEMPFAIL)
        self.assertIn("dns-missing", cp.stdout.decode())
        self.assertEqual(signing_keys(e)[("ed25519-sha256", "primary")], old)
        knot.update(name, value)
        e.cli("key", "step")
        self.assertEqual(signing_keys(e)[("ed25519-sha256", "primary")], manual[0]["selector"])


class ConfigChanges(EnvTestCase):
    def test_algorithms_and_bits_change_by_rotation(self):
        """rsa_bits raised: the RSA key is rotated to a larger one; an algorithm added gets its
        keys by rotation; an algorithm removed has its keys retired, never swapped in place."""
        e = self.e
        w = World(e, algs=("rsa-sha256",), backup=False, extra_daemon=STEP)
        knot = Knot(e, w.refresh_records())
        rotation_config(e, knot, "publish_wait = 0\nretire_after = 0\ndestroy_after = 1d\n"
                        "dns_publish = rfc2136\n", notify=False)
        old = signing_keys(e)[("rsa-sha256", "primary")]

        def set_domain(algs, bits):
            with open(e.conf) as f:
                text = f.read()
            text = text.replace("algorithms = rsa-sha256, ed25519-sha256\n", "")
            text = text.replace("algorithms = rsa-sha256\n", "").replace("rsa_bits = 3072\n", "")
            e.write_config(text.replace(f"[domain {ZONE}]\n",
                                        f"[domain {ZONE}]\nalgorithms = {algs}\nrsa_bits = {bits}\n"))

        set_domain("rsa-sha256, ed25519-sha256", 3072)
        out = e.cli("key", "step").stdout.decode()
        self.assertIn("rsa_bits", out)
        self.assertIn("no signing key", out)
        now = {k["selector"]: k for k in keys(e)}
        new_rsa = signing_keys(e)[("rsa-sha256", "primary")]
        self.assertNotEqual(new_rsa, old)
        self.assertEqual(now[new_rsa]["bits"], 3072)
        self.assertEqual(now[old]["state"], "retiring")
        self.assertIn(("ed25519-sha256", "primary"), signing_keys(e))
        e.cli("dns", "check")
        # ed25519 taken out again: its key retires (and is revoked later), nothing is made.
        set_domain("rsa-sha256", 3072)
        out = e.cli("key", "step").stdout.decode()
        self.assertIn("not in algorithms=", out)
        self.assertNotIn(("ed25519-sha256", "primary"), signing_keys(e))
        self.assertEqual(signing_keys(e)[("rsa-sha256", "primary")], new_rsa)


class ManualMoves(EnvTestCase):
    def test_refusals_keep_domain_signable(self):
        e = self.e
        w = World(e, algs=("ed25519-sha256",))
        knot = Knot(e, w.refresh_records())
        rotation_config(e, knot, "dns_publish = manual\n")
        act = signing_keys(e)[("ed25519-sha256", "primary")]
        sb = signing_keys(e)[("ed25519-sha256", "backup")]
        d = ("--domain", ZONE)
        # The only active key cannot be retired, revoked or destroyed.
        cp = e.cli("key", "retire", *d, "--selector", act, check=EX_DATAERR)
        self.assertIn("only active", cp.stderr.decode())
        e.cli("key", "revoke", *d, "--selector", act, "--yes", check=EX_DATAERR)
        e.cli("key", "destroy", *d, "--selector", act, "--yes", check=EX_DATAERR)
        e.cli("key", "retire", *d, "--selector", sb, check=EX_DATAERR)
        # revoke/destroy need a confirmation; without a terminal, --yes.
        cp = e.cli("key", "revoke", *d, "--selector", act, check=EX_USAGE)
        self.assertIn("--yes", cp.stderr.decode())
        # A new key DNS does not serve cannot be activated without --force.
        e.cli("key", "rotate", *d)
        new = [k["selector"] for k in keys(e) if k["state"] == "pending"][0]
        cp = e.cli("key", "activate", *d, "--selector", new, check=EX_DATAERR)
        self.assertIn("does not serve", cp.stderr.decode())
        rec = [r for r in keys(e, what="dns") if r["selector"] == new][0]
        knot.update(rec["name"], rec["value"])
        e.cli("key", "activate", *d, "--selector", new)
        self.assertEqual(signing_keys(e)[("ed25519-sha256", "primary")], new)
        states = {k["selector"]: k["state"] for k in keys(e)}
        self.assertEqual(states[act], "retiring")
        # Undo: the retiring key (still published) can sign again.
        e.cli("key", "activate", *d, "--selector", act)
        self.assertEqual(signing_keys(e)[("ed25519-sha256", "primary")], act)
        # Just retired: a daemon may not have reloaded yet, so revoking waits (or --force).
        cp = e.cli("key", "revoke", *d, "--selector", new, "--yes", check=EX_DATAERR)
        self.assertIn("step_interval", cp.stderr.decode())
        e.cli("key", "revoke", *d, "--selector", new, "--yes", "--force")
        e.cli("key", "activate", *d, "--selector", new, check=EX_DATAERR)
        e.cli("key", "destroy", *d, "--selector", new, "--yes")
        self.assertNotIn(new, {k["selector"] for k in keys(e)})
        e.cli("key", "destroy", *d, "--selector", "nosuch", "--yes", check=EX_DATAERR)


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(timeout=30)


class CrashSafety(EnvTestCase):
    """kill -9 at each step of a rotation (the CLI, then the daemon): the ring always
    signs with a published key and the next step finishes the move."""

    def world(self):
        e = self.e
        self.w = World(e, algs=("ed25519-sha256",), backup=False, extra_daemon=STEP)
        self.knot = Knot(e, self.w.refresh_records())
        hook = e.write("publish.sh", f"""#!/bin/sh
# Blocks while the file block-ACTION exists (a kill point), then publishes with knsupdate.
while [ -e {e.path('block-')}$3 ]; do touch {e.path('blocked')}; sleep 0.1; done
name=$(cut -d' ' -f1 {self.knot.tsig_file}); sec=$(cut -d' ' -f3 {self.knot.tsig_file})
{{ echo "server 127.0.0.1 {self.knot.port}"; echo "zone {ZONE}."; echo "update delete $1. TXT"
  [ "$3" != delete ] && echo "update add $1. 60 TXT \\"$2\\""
  echo send; }} | knsupdate -y "hmac-sha256:$name:$sec"
""", 0o755)
        rotation_config(e, self.knot, "publish_wait = 0\nretire_after = 0\ndestroy_after = 0\n"
                        "dns_publish = command\n", dns_extra=f"publish_command = {hook}\n")

    def block(self, action):
        for a in ("add", "revoke", "delete"):
            p = self.e.path(f"block-{a}")
            if a == action:
                open(p, "w").close()
            elif os.path.exists(p):
                os.unlink(p)
        if os.path.exists(self.e.path("blocked")):
            os.unlink(self.e.path("blocked"))

    def blocked(self):
        return os.path.exists(self.e.path("blocked"))

    def assert_signable(self):
        """The signing key (newest active) exists and DNS serves its exact record."""
        sel = signing_keys(self.e).get(("ed25519-sha256", "primary"))
        self.assertIsNotNone(sel, keys(self.e))
        rec = [r for r in keys(self.e, what="dns") if r["selector"] == sel][0]
        self.assertEqual(self.knot.txt(rec["name"]), [rec["value"]])
        return sel

    def cli_killed(self, *args):
        """Run dkimkeep until a publish hook blocks, then kill -9 it and its hook."""
        with open(self.e.path("cli.log"), "ab") as log:
            log.write(f"$ dkimkeep {' '.join(args)}\n".encode())
            log.flush()
            p = subprocess.Popen([prog("dkimkeep"), "-c", self.e.conf] + list(args),
                                 env=self.e.env, stdout=log, stderr=log, start_new_session=True)
        wait_for(lambda: self.blocked() or p.poll() is not None, "a publish hook blocks")
        kill_group(p)

    def daemon(self):
        self.d = start_daemon(self.w, start_new_session=True)

    def test_kill_cli_at_each_step(self):
        """The daemon steps too (as in production): the CLI is killed in each publish, with
        the daemon's own step blocked there as well; signing never fails."""
        e = self.e
        self.world()
        self.daemon()
        load = Load(e, self.knot, e.socket, threads=1).start()
        try:
            old = self.assert_signable()
            self.block("add")
            self.cli_killed("key", "rotate", "--domain", ZONE)      # publishing the new key
            self.assertEqual(self.assert_signable(), old)
            self.block("revoke")                                     # new key on, old retiring
            self.cli_killed("key", "step")
            new = self.assert_signable()
            with open(e.path("cli.log"), errors="replace") as f:
                self.assertNotEqual(new, old, f.read())
            wait_for(lambda: load.seen([new]), "the daemon signs with the new key")
            self.block("delete")                                     # old revoked, destroying
            self.cli_killed("key", "step")
            self.assertEqual(self.assert_signable(), new)
            self.block(None)
            wait_for(lambda: e.cli("key", "step", check=None).returncode == 0
                     and [k["selector"] for k in keys(e)] == [new], "the rotation is finished")
            self.assertEqual(self.assert_signable(), new)
            self.assertEqual(self.knot.txt(f"{old}._domainkey.{ZONE}"), [])
        finally:
            load.finish()
        self.assertEqual(load.failures(), [])
        e.cli("dns", "check")
        kill_group(self.d)

    def test_kill_daemon_at_each_step(self):
        """The daemon alone drives the rotation and is killed -9 in each publish; each restart
        signs with a published key at once, and the last one finishes the rotation."""
        e = self.e
        self.world()
        old = self.assert_signable()
        e.cli("key", "generate", "--domain", ZONE, "--alg", "ed25519-sha256")  # pending, unpublished
        for action in ("add", "revoke", "delete"):
            self.block(action)
            self.daemon()
            wait_for(self.blocked, f"the daemon's step blocks in {action}")
            kill_group(self.d)
            self.assert_signable()
            out = self.w.sign(b"From: a@example.com\r\nTo: b@example.net\r\nSubject: s\r\n\r\nx\r\n",
                              "--socket", e.socket, check=None)
            self.assertNotEqual(out.returncode, 0)  # the daemon is dead; the token decides
        self.block(None)
        self.daemon()
        wait_for(lambda: len(keys(e)) == 1 and old not in {k["selector"] for k in keys(e)},
                 "the daemon finishes the rotation")
        new = self.assert_signable()
        wait_for(lambda: f"s={new};".encode() in self.w.sign(
            b"From: a@example.com\r\nTo: b@example.net\r\nSubject: s\r\n\r\nx\r\n").stdout
            .replace(b"\r\n\t", b"").replace(b" ", b""), "the daemon signs with the new key")
        kill_group(self.d)


class FaultedMoves(EnvTestCase):
    """A command that fails between the token writes of one move (tests/p11fault fails the
    Nth PKCS#11 call, as a crash there would stop it): the ring still signs with a published
    key, and the next step finishes the move."""

    def setUp(self):
        super().setUp()
        e = self.e
        self.w = World(e, algs=("ed25519-sha256",), backup=False, extra_daemon=STEP)
        self.knot = Knot(e, self.w.refresh_records())
        rotation_config(e, self.knot, "publish_wait = 1h\nretire_after = 0\ndestroy_after = 0\n"
                        "dns_publish = rfc2136\n", dns_extra="ttl = 2m\n", notify=False)
        with open(e.conf) as f:
            text = f.read()
        # The same tokens through p11fault, for the one command that is to fail.
        self.fconf = e.write("faulty.conf", text.replace(f"module = {SOFTHSM}",
                                                        f"module = {p11fault_path()}"))
        self.control = e.path("p11fault.control")

    def faulty(self, rule, *args):
        e = self.e
        with open(self.control + ".new", "w") as f:
            f.write(rule + "\n")
        os.rename(self.control + ".new", self.control)
        env = dict(e.env, P11FAULT_MODULE=SOFTHSM, P11FAULT_CONTROL=self.control)
        return subprocess.run([prog("dkimkeep"), "-c", self.fconf] + list(args), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)

    def states(self):
        return {k["selector"]: k["state"] for k in keys(self.e)}

    def test_crash_between_activation_writes(self):
        """An activation writes the new key active, then the old one retiring: a failure
        between the two leaves two active keys; the daemon signs with the new one (the
        newest activation), and the next step retires the old one."""
        e, d = self.e, ("--domain", ZONE)
        old = signing_keys(e)[("ed25519-sha256", "primary")]
        ev = json.loads(e.cli("key", "rotate", *d, "--json").stdout)
        new = [x["selector"] for x in ev if x["event"] == "started"][0]
        # C_CreateObject of "key activate": 1 its lease, 2 the new key's record (active),
        # 3 the old key's record (retiring) -- that one fails.
        # [dns] ttl= is the TTL of what rfc2136 publishes; out of bounds is refused.
        self.assertEqual(self.knot.txt_ttl(f"{new}._domainkey.{ZONE}"), 120)
        with open(e.conf) as f:
            bad = e.write("bad.conf", f.read().replace("ttl = 2m", "ttl = 5s"))
        cp = e.run([prog("dkimkeep"), "-c", bad, "key", "list"], check=78)
        self.assertIn("ttl", cp.stderr.decode())
        cp = self.faulty("C_CreateObject nth 3 CKR_DEVICE_ERROR", "key", "activate", *d,
                         "--selector", new)
        self.assertNotEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(self.states(), {old: "active", new: "active"})
        self.assertEqual(signing_keys(e)[("ed25519-sha256", "primary")], new)
        start_daemon(self.w)
        out = self.w.sign(MSG).stdout
        self.assertEqual(selectors_of(out), [new])
        self.assertEqual(verify_live(self.knot, out), "")
        e.cli("key", "step", *d)
        self.assertEqual(self.states()[new], "active")
        self.assertEqual(self.states()[old], "retiring")
        self.w.daemon.send_signal(signal.SIGTERM)
        self.assertEqual(self.w.daemon.wait(timeout=60), 0)

    def test_destroy_cut_short(self):
        """A destruction writes the record "destroyed" first, then removes the private key,
        the public key and (once DNS no longer serves the name) the record: a failure after
        the private key leaves a tombstone that key listings skip and the next step
        finishes."""
        e, d = self.e, ("--domain", ZONE)
        old = signing_keys(e)[("ed25519-sha256", "primary")]
        ev = json.loads(e.cli("key", "rotate", *d, "--json").stdout)
        new = [x["selector"] for x in ev if x["event"] == "started"][0]
        e.cli("key", "activate", *d, "--selector", new)
        e.cli("key", "revoke", *d, "--selector", old, "--yes", "--force")
        old_id = [k["key_id"] for k in keys(e) if k["selector"] == old][0]
        # C_DestroyObject of "key destroy": 1 the old record (rewritten as "destroyed"),
        # 2 the private key, 3 the public key -- that one fails.
        cp = self.faulty("C_DestroyObject nth 3 CKR_DEVICE_ERROR", "key", "destroy", *d,
                         "--selector", old, "--yes")
        self.assertNotEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(self.states(), {new: "active"})   # listings skip the tombstone
        self.assertEqual(self.knot.txt(f"{old}._domainkey.{ZONE}"), [])
        res = {r["selector"]: r for r in json.loads(e.cli("dns", "check", "--json").stdout)}
        self.assertEqual(res[old]["state"], "destroyed")
        self.assertTrue(res[old]["ok"], res[old])
        ev = json.loads(e.cli("key", "step", *d, "--json").stdout)
        self.assertIn(("destroyed", old), [(x["event"], x["selector"]) for x in ev])
        res = {r["selector"]: r for r in json.loads(e.cli("dns", "check", "--json").stdout)}
        self.assertTrue(res[old]["ok"], res[old])   # named by the new key's replaces=
        self.assertEqual(self.states(), {new: "active"})
        # Nothing of the old key is left in the token: no key object is labelled with its
        # name, and no record names its id (the tombstone went once DNS had no record).
        objs = e.run(["pkcs11-tool", "--module", SOFTHSM, "--token-label", "dk-primary",
                      "--login", "--pin", "1234", "--list-objects"], check=None)
        self.assertEqual(objs.returncode, 0, objs.stderr)
        listing = objs.stdout.decode(errors="replace")
        self.assertNotIn(f"{old}._domainkey", listing)
        self.assertNotIn(old_id, listing)


class TwoDaemons(EnvTestCase):
    def test_one_token_two_daemons(self):
        """Both daemons step the same rings; a rotation is picked up by both within one step
        interval of the move, exactly one new key is made, and no request fails."""
        e = self.e
        w = World(e, algs=("rsa-sha256",), extra_daemon=STEP)
        knot = Knot(e, w.refresh_records())
        rotation_config(e, knot, "publish_wait = 1s\nretire_after = 2s\ndestroy_after = 2s\n"
                        "dns_publish = rfc2136\n")
        with open(e.conf) as f:
            text = f.read()
        sock2 = e.path("sign2.sock")
        conf2 = e.write("second.conf", text.replace(f"socket = {e.socket}", f"socket = {sock2}"))
        start_daemon(w)
        w2 = World.__new__(World)
        w2.e = e
        w2.daemon = None
        e_socket = e.socket
        e.socket = sock2
        d2 = start_daemon(w2, conf=conf2, log="second.log")
        e.socket = e_socket
        loads = [Load(e, knot, e.socket, threads=1).start(), Load(e, knot, sock2, threads=1).start()]
        try:
            old = signing_keys(e)[("rsa-sha256", "primary")]
            w.sign(b"From: a@example.com\r\nTo: b@example.net\r\nSubject: s\r\n\r\nx\r\n")
            e.cli("key", "rotate", "--domain", ZONE)
            wait_for(lambda: signing_keys(e)[("rsa-sha256", "primary")] != old, "the new key is active")
            new = signing_keys(e)[("rsa-sha256", "primary")]
            t0 = time.monotonic()
            wait_for(lambda: all(l.seen([new]) for l in loads), "both daemons sign with the new key",
                     timeout=30)
            self.assertLess(time.monotonic() - t0, 15)
            wait_for(lambda: old not in {k["selector"] for k in keys(e)}, "the old key is destroyed")
        finally:
            for l in loads:
                l.finish()
        for l in loads:
            self.assertEqual(l.failures(), [])
        self.assertEqual(len([k for k in keys(e) if k["slot"] == "primary"]), 1, keys(e))
        for d in (d2, w.daemon):
            d.send_signal(signal.SIGTERM)
            self.assertEqual(d.wait(timeout=60), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
