"""dkimkeep dns check against a real knot: every mismatch between DNS and the tokens is
named, CNAME-delegated selectors are followed, exit 0 only when everything agrees."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import EnvTestCase
from daemon_harness import World
from rotation_harness import Knot, ZONE, free_port, keys, rotation_config

SIGN = ("active", "standby")


class DnsCheck(EnvTestCase):
    def setUp(self):
        super().setUp()
        self.w = World(self.e)
        self.recs = {r["selector"]: r for r in self.w.refresh_records()}
        self.knot = Knot(self.e, list(self.recs.values()))
        rotation_config(self.e, self.knot, "dns_publish = manual\n", notify=False)

    def check(self, *args, want=None):
        cp = self.e.cli("dns", "check", "--json", *args, check=None)
        out = json.loads(cp.stdout)
        if want is not None:
            self.assertEqual(cp.returncode, want, cp.stdout)
        return {r["selector"]: r for r in out}, cp.returncode

    def codes(self, selector, *args):
        res, rc = self.check(*args)
        self.assertIn(selector, res)
        return [i["code"] for i in res[selector]["issues"]], rc

    def key(self, alg, state):
        return [k for k in keys(self.e) if k["alg"] == alg and k["state"] == state][0]

    def restore(self, sel):
        r = self.recs[sel]
        self.knot.update(r["name"], r["value"])

    def test_all_agree(self):
        res, rc = self.check(want=0)
        self.assertEqual(len(res), 4)
        self.assertTrue(all(r["ok"] and r["state"] in SIGN for r in res.values()))
        cp = self.e.cli("dns", "check")
        self.assertEqual(cp.stdout.decode().count("\nok") + cp.stdout.decode().startswith("ok"), 4)
        # --server asks another server; one that does not answer is a problem, not a pass.
        self.check("--server", self.knot.server, want=0)
        res, rc = self.check("--server", f"127.0.0.1:{free_port()}", want=1)
        self.assertTrue(all(i["code"] == "lookup-failed" for r in res.values() for i in r["issues"]))

    def test_mismatches(self):
        e, knot = self.e, self.knot
        rsa = self.key("rsa-sha256", "active")["selector"]
        ed = self.key("ed25519-sha256", "active")["selector"]
        ed_sb = self.key("ed25519-sha256", "standby")["selector"]
        name = lambda s: f"{s}._domainkey.{ZONE}"
        # a selector that signs but is not published
        knot.update(name(rsa))
        self.assertEqual(self.codes(rsa), (["signing-unpublished"], 1))
        cp = e.cli("dns", "check", check=1)
        self.assertIn(f"PROBLEM {name(rsa)}", cp.stdout.decode())
        self.assertIn("signing-unpublished", cp.stdout.decode())
        self.restore(rsa)
        # wrong k=
        knot.update(name(ed_sb), self.recs[ed_sb]["value"].replace("k=ed25519", "k=rsa"))
        self.assertEqual(self.codes(ed_sb)[0], ["wrong-k"])
        self.restore(ed_sb)
        # wrong key: another key's p=
        knot.update(name(ed), self.recs[ed_sb]["value"])
        self.assertEqual(self.codes(ed)[0], ["wrong-key"])
        self.restore(ed)
        # testing flag
        knot.update(name(rsa), self.recs[rsa]["value"].replace("k=rsa;", "k=rsa; t=y;"))
        self.assertEqual(self.codes(rsa)[0], ["testing"])
        # two records at one name: a verifier may get either
        knot.update(name(rsa), [self.recs[rsa]["value"], self.recs[ed_sb]["value"]])
        self.assertIn("multiple-records", self.codes(rsa)[0])
        # not a DKIM key record at all
        knot.update(name(rsa), "v=spf1 -all")
        self.assertEqual(self.codes(rsa)[0], ["bad-record"])
        self.restore(rsa)
        self.check(want=0)

    def test_cname_followed(self):
        e, knot = self.e, self.knot
        ed = self.key("ed25519-sha256", "active")["selector"]
        ed_sb = self.key("ed25519-sha256", "standby")["selector"]
        target = f"{ed}.keys.dkimprovider.{ZONE}"
        knot.update(target, self.recs[ed]["value"])
        knot.update(f"{ed}._domainkey.{ZONE}", cname=target)
        res, rc = self.check(want=0)
        self.assertEqual(res[ed]["cnames"], 1)
        self.assertEqual(res[ed]["target"], target)
        self.assertIn("via CNAME", e.cli("dns", "check").stdout.decode())
        knot.update(target, self.recs[ed_sb]["value"])
        self.assertEqual(self.codes(ed)[0], ["wrong-key"])
        knot.update(target)
        self.assertEqual(self.codes(ed)[0], ["signing-unpublished"])

    def test_rotation_leftovers_and_weak_keys(self):
        """A pending key not yet published, a revoked key still answering with its key, a
        record left for a destroyed key, and an RSA key under 2048 bits."""
        e, knot = self.e, self.knot
        d = ("--domain", ZONE)
        old = self.key("rsa-sha256", "active")["selector"]
        e.cli("key", "rotate", *d, "--alg", "rsa-sha256")
        new = self.key("rsa-sha256", "pending")["selector"]
        self.assertEqual(self.codes(new), (["missing"], 1))
        rec = [r for r in json.loads(e.cli("key", "dns", "--json").stdout) if r["selector"] == new][0]
        knot.update(rec["name"], rec["value"])
        e.cli("key", "activate", *d, "--selector", new)
        self.check(want=0)
        # dns_publish = manual: dkimkeep changes nothing in DNS; the operator forgot to.
        e.cli("key", "revoke", *d, "--selector", old, "--yes", "--force")
        self.assertEqual(self.codes(old)[0], ["revoked-still-published"])
        e.cli("key", "destroy", *d, "--selector", old, "--yes")
        res, rc = self.check(want=1)
        self.assertEqual(res[old]["state"], "destroyed")
        self.assertEqual([i["code"] for i in res[old]["issues"]], ["destroyed-still-published"])
        knot.update(f"{old}._domainkey.{ZONE}", "v=DKIM1; k=rsa; p=")
        self.assertEqual(self.codes(old)[0], ["destroyed-still-published"])
        knot.update(f"{old}._domainkey.{ZONE}")
        self.check(want=0)
        # An imported RSA-1024 key: published and right, but it should be rotated away.
        pem = e.path("weak.pem")
        subprocess.run(["openssl", "genrsa", "-out", pem, "1024"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        e.cli("key", "import", *d, "--selector", "weak1024", "--pem", pem)
        rec = [r for r in json.loads(e.cli("key", "dns", "--json").stdout)
               if r["selector"] == "weak1024"][0]
        knot.update(rec["name"], rec["value"])
        self.assertEqual(self.codes("weak1024")[0], ["weak-key"])

    def test_destroyed_without_successor(self):
        """A key destroyed with no key replacing it (its selector is named by no other key):
        its record is kept in the token as a tombstone, so a record left in DNS is still
        found; once DNS drops it, "key step" forgets the tombstone."""
        e, knot = self.e, self.knot
        d = ("--domain", ZONE)
        e.cli("key", "generate", *d, "--alg", "ed25519-sha256", "--selector", "lone")
        rec = [r for r in json.loads(e.cli("key", "dns", "--json").stdout)
               if r["selector"] == "lone"][0]
        knot.update(rec["name"], rec["value"])
        self.assertEqual(self.key("ed25519-sha256", "pending")["selector"], "lone")
        e.cli("key", "revoke", *d, "--selector", "lone", "--yes", "--force")
        e.cli("key", "destroy", *d, "--selector", "lone", "--yes")
        self.assertNotIn("lone", {k["selector"] for k in keys(e)})
        # dns_publish = manual: the record is still there, and dns check says so.
        res, rc = self.check(want=1)
        self.assertEqual(res["lone"]["state"], "destroyed")
        self.assertEqual([i["code"] for i in res["lone"]["issues"]], ["destroyed-still-published"])
        # The tombstone stays while DNS serves the name...
        e.cli("key", "step", *d, check=None)
        self.assertIn("lone", self.check(want=1)[0])
        # ...and goes once it does not.
        knot.update(rec["name"])
        e.cli("key", "step", *d, check=None)
        res, rc = self.check(want=0)
        self.assertNotIn("lone", res)


if __name__ == "__main__":
    unittest.main(verbosity=2)
