"""The audit log end to end: a real dkimkeepd and SoftHSM tokens, the real
dkimkeep command line for admin acts, verify and show.

Every record is checked here in Python too (the chain hash is recomputed with
hashlib, lines are parsed with json), so dkimkeep is not the only judge of its
own log.  Tampering is done the way an attacker with the disk would: edit,
delete, insert, reorder, truncate, forge or replay a checkpoint, and recompute
the hash chain after the change.
"""
import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (EnvTestCase, prog, p11fault_path, SOFTHSM, EX_OK, EX_DATAERR, EX_UNAVAILABLE,
                     EX_CONFIG)
from daemon_harness import World, RawClient, PipelinedLoad, frame, pb_field, split_message

EX_NOT_INTACT = EX_DATAERR
MSG = (b"From: Joe Sender <joe.sender@example.com>\r\nTo: mary.rcpt@example.net\r\n"
       b"Subject: audit\r\nMessage-ID: <%s@mail.example.com>\r\n\r\nHello.\r\n")
SECRETS = [b"joe.sender", b"mary.rcpt", b"mail.example.com", b"secret-mid", b"@"]


def msg(mid):
    return MSG % mid.encode()


def lines_of(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n"), f"{path} does not end with a newline"
    return data[:-1].split(b"\n")


def records(path):
    return [json.loads(l) for l in lines_of(path)]


def sha(line):
    return hashlib.sha256(line).hexdigest()


def dump(rec):
    """A record written back as dkimkeep writes it (compact, keys in order)."""
    return json.dumps(rec, separators=(",", ":")).encode()


def write_lines(path, lines, final_newline=True):
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + (b"\n" if final_newline else b""))


def rechain(lines, start=1, renumber=False):
    """What an attacker with the disk can do: fix seq and prev after a change."""
    out = list(lines[:start])
    for l in lines[start:]:
        r = json.loads(l)
        if renumber:
            r["seq"] = json.loads(out[-1])["seq"] + 1
        r["prev"] = sha(out[-1])
        out.append(dump(r))
    return out


def sign_request_mid(rid, header_section, body, message_id=None):
    sr = pb_field(8, header_section) + pb_field(10, body)
    if message_id is not None:
        sr += pb_field(13, message_id)
    return pb_field(1, rid) + pb_field(2, sr)


class AuditCase(EnvTestCase):
    def world(self, log=None, extra_daemon="", start=True, **kw):
        self.log = log or self.e.path("audit.jsonl")
        w = World(self.e, extra_daemon=f"audit_log = {self.log}\n{extra_daemon}", **kw)
        if start:
            w.start()
        return w

    def verify(self, *files, check=None, args=()):
        cp = self.e.cli("audit", "verify", "--json", *args, *files, check=check)
        return cp.returncode, json.loads(cp.stdout), cp.stderr.decode()

    def assert_intact(self, *files, args=()):
        rc, doc, err = self.verify(*files, args=args)
        self.assertEqual(rc, EX_OK, f"{doc}\n{err}")
        self.assertTrue(doc["intact"])
        return doc

    def assert_python_chain(self, *files):
        """Our own check of the chain: seq + 1 and prev = SHA-256 of the line before."""
        prev = None
        for path in files:
            for l in lines_of(path):
                r = json.loads(l)
                self.assertEqual(r["v"], 1)
                self.assertRegex(r["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
                if prev is None:
                    self.assertEqual(r["event"], "log.open")
                else:
                    self.assertEqual(r["seq"], json.loads(prev)["seq"] + 1)
                    self.assertEqual(r["prev"], sha(prev))
                self.assertEqual(dump(r), l, "records are compact JSON, keys in order")
                prev = l


class Records(AuditCase):
    def test_records_privacy_and_message_match(self):
        w = self.world()
        for i in range(3):
            w.sign(msg(f"secret-mid-{i}"), "--identity", "joe.sender@example.com")
        cp = w.sign(msg("secret-mid-x"), "--domain", "unknown.example", check=None)
        self.assertNotEqual(cp.returncode, 0)
        # message_id in the request wins over the header's
        c = RawClient(self.e.socket)
        hs, body = split_message(msg("secret-mid-header"))
        c.send(frame(sign_request_mid(4242, hs, body, b"<secret-mid-field@mail.example.com>")))
        r = c.recv_response()
        self.assertEqual(r["status"], "OK", r)
        c.close()
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        self.assert_python_chain(self.log)
        recs = records(self.log)
        signs = [r for r in recs if r["event"] == "sign"]
        ok = [r for r in signs if r["outcome"] == "ok"]
        self.assertEqual(len(ok), 4)
        for r in ok:
            self.assertEqual(r["client"], "tests")
            self.assertEqual((r["uid"], r["gid"]), (os.getuid(), os.getgid()))
            self.assertGreater(r["pid"], 0)
            self.assertEqual(r["domain"], "example.com")
            self.assertEqual({s["alg"] for s in r["sigs"]}, {"rsa-sha256", "ed25519-sha256"})
            for s in r["sigs"]:
                self.assertEqual(s["slot"], "primary")
                self.assertRegex(s["key_id"], r"^[0-9a-f]{16}$")
                self.assertTrue(s["selector"])
            self.assertRegex(r["mid"], r"^[0-9a-f]{64}$")
            self.assertEqual(len(base64.b64decode(r["bh"])), 32)
        self.assertEqual(len({r["mid"] for r in ok}), 4, "one keyed hash per Message-ID")
        self.assertTrue(all(re.fullmatch(r"[0-9a-f]{64}", r["ident"]) for r in ok[:3]))
        self.assertIn(4242, [r["req"] for r in ok])
        refused = [r for r in signs if r["outcome"] == "refused"]
        self.assertEqual([r["reason"] for r in refused], ["UNKNOWN_DOMAIN"])
        # no Message-ID, address or identity in clear anywhere in the log
        raw = open(self.log, "rb").read()
        for s in SECRETS:
            self.assertNotIn(s, raw)
        # admin acts of World's set-up, with who did them, each sealed at once
        acts = [r for r in recs if "user" in r]
        self.assertEqual([a["event"] for a in acts], ["token.init"] * 2 + ["key.generate"] * 4)
        self.assertTrue(all(a["outcome"] == "ok" and a["uid"] == os.getuid() for a in acts))
        for a in acts:
            nxt = recs[recs.index(a) + 1]
            self.assertEqual((nxt["event"], nxt["reason"]), ("checkpoint", "admin"))
        self.assertEqual(recs[-1]["event"], "checkpoint")
        self.assertIn("daemon.start", [r["event"] for r in recs])
        self.assertIn("daemon.stop", [r["event"] for r in recs[-2:]])
        doc = self.assert_intact(self.log)
        self.assertTrue(doc["anchor"]["checked"])
        # whoever holds the token can find a message's records; nobody else can
        for mid, n in (("<secret-mid-1@mail.example.com>", 1), ("secret-mid-1@mail.example.com", 1),
                       ("<secret-mid-field@mail.example.com>", 1),
                       ("<secret-mid-header@mail.example.com>", 0),
                       ("<never-sent@mail.example.com>", 0)):
            cp = self.e.cli("audit", "show", self.log, "--message-id", mid, "--json")
            self.assertEqual(len(json.loads(cp.stdout)["matches"]), n, mid)
        # and show reads the same numbers
        doc = json.loads(self.e.cli("audit", "show", self.log, "--json").stdout)
        g = [g for g in doc["groups"] if g["client"] == "tests" and g["domain"] == "example.com"]
        self.assertEqual((g[0]["signed"], g[0]["signatures"], g[0]["backup"]), (4, 8, 0))
        self.assertEqual(sum(g["refusals"].get("UNKNOWN_DOMAIN", 0) for g in doc["groups"]), 1)
        self.assertEqual(len(doc["admin_acts"]), 6)
        self.assertEqual({a["user"] for a in doc["admin_acts"]}, {acts[0]["user"]})
        text = self.e.cli("audit", "show", self.log, "--since", "1d", "--client", "tests").stdout
        self.assertIn(b"tests", text)
        self.assertNotIn(b"key.generate", text)

    def test_loop_refusals_are_recorded(self):
        w = self.world()
        c = RawClient(self.e.socket)
        c.send(frame(pb_field(1, 7) + pb_field(2, pb_field(1, "EXAMPLE.com") + pb_field(8, b""))))
        self.assertEqual(c.recv_response()["status"], "BAD_REQUEST")
        c.send(frame(b"\xff\xff\xff"))
        self.assertEqual(c.recv_response()["status"], "BAD_REQUEST")
        c.close()
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        refused = [r for r in records(self.log) if r.get("outcome") == "refused"]
        self.assertEqual([(r["event"], r["reason"], r.get("domain"), r.get("req")) for r in refused],
                         [("sign", "BAD_REQUEST", "example.com", 7),
                          ("request", "BAD_REQUEST", None, 0)])
        self.assertEqual(refused[0]["client"], "tests")
        self.assert_intact(self.log)

    def test_checkpoint_every_n_and_audit_token(self):
        w = self.world(extra_daemon="audit_checkpoint = 3\naudit_token = backup\n")
        for i in range(7):
            w.sign(msg(f"secret-mid-{i}"))
        w.stop()
        recs = records(self.log)
        since = 0
        for r in recs:
            if r["event"] == "checkpoint":
                self.assertLessEqual(r["records"], 3)
                since = 0
            else:
                since += 1
                self.assertLessEqual(since, 3)
        self.assertIn("count", [r["reason"] for r in recs if r["event"] == "checkpoint"])
        keys = json.loads(self.e.cli("audit", "pubkey", "--json").stdout)
        self.assertEqual([(k["token"], k["current"]) for k in keys], [("dk-backup", True)])
        self.assertEqual({r["key"] for r in recs if r["event"] == "checkpoint"}, {keys[0]["key"]})
        self.assert_intact(self.log)
        # a name that is no [token] is refused with the key named
        with open(self.e.conf) as f:
            text = f.read()
        self.e.write_config(text.replace("audit_token = backup", "audit_token = nosuch"))
        cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf, "--check"], check=EX_CONFIG)
        self.assertIn(b"audit_token", cp.stderr)

    def test_minute_checkpoint(self):
        """A record waits at most about a minute for its checkpoint while the daemon runs."""
        w = self.world()
        w.sign(msg("secret-mid-1"))
        end = time.monotonic() + 90
        while time.monotonic() < end:
            if any(r["event"] == "checkpoint" and r["reason"] == "minute" for r in records(self.log)):
                break
            time.sleep(1)
        recs = records(self.log)
        cps = [r for r in recs if r["event"] == "checkpoint" and r["reason"] == "minute"]
        self.assertEqual(len(cps), 1, recs[-3:])
        self.assertEqual(recs[-1]["event"], "checkpoint", "the sign record is sealed")
        self.assertTrue(w.alive())
        self.assert_intact(self.log)
        w.stop()


class Tamper(AuditCase):
    """One real log, then every kind of tampering on copies of it."""

    def setUp(self):
        super().setUp()
        w = self.world(extra_daemon="audit_checkpoint = 4\n")
        for i in range(10):
            w.sign(msg(f"secret-mid-{i}"))
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        self.lines = lines_of(self.log)
        self.recs = [json.loads(l) for l in self.lines]
        self.signs = [i for i, r in enumerate(self.recs) if r["event"] == "sign"]
        self.cps = [i for i, r in enumerate(self.recs) if r["event"] == "checkpoint"]
        pem = self.e.cli("audit", "pubkey").stdout
        self.pub = self.e.write("audit.pub", pem)
        self.n = 0

    def variant(self, lines, final_newline=True):
        self.n += 1
        p = self.e.path(f"tampered-{self.n}.jsonl")
        write_lines(p, lines, final_newline)
        return p

    def assert_caught(self, lines, kind, line, args=(), final_newline=True):
        p = self.variant(lines, final_newline)
        rc, doc, err = self.verify(p, args=args)
        self.assertEqual(rc, EX_NOT_INTACT, doc)
        self.assertFalse(doc["intact"])
        prob = doc["problem"]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        self.assertIn(prob["kind"], kinds, prob)
        self.assertEqual(prob["line"], line, prob)
        self.assertEqual(prob["file"], p)
        self.assertIn(f"line {line}", err)
        return prob

    def test_intact_log_accepted(self):
        self.assert_python_chain(self.log)
        doc = self.assert_intact(self.log)
        self.assertTrue(doc["anchor"]["checked"])
        self.assertEqual(doc["unsealed"], 0)
        # with the exported key alone, too (truncation then cannot be ruled out: said so)
        doc = self.assert_intact(self.log, args=("--pubkey", self.pub, "--no-token"))
        self.assertFalse(doc["anchor"]["read"])
        self.assertTrue(any("truncation" in n for n in doc["notes"]))
        text = self.e.cli("audit", "verify", self.log).stdout.decode()
        self.assertTrue(text.startswith("intact:"), text)

    def test_edited_record(self):
        i = self.signs[3]
        lines = list(self.lines)
        lines[i] = lines[i].replace(b'"domain":"example.com"', b'"domain":"evil.example"')
        self.assertNotEqual(lines[i], self.lines[i])
        prob = self.assert_caught(lines, "edited", i + 1)
        self.assertEqual(prob["seq"], self.recs[i]["seq"])
        # rewritten with the chain recomputed: the next checkpoint no longer verifies
        cp = min(c for c in self.cps if c > i)
        self.assert_caught(rechain(lines, i + 1), "checkpoint", cp + 1)
        self.assert_caught(rechain(lines, i + 1), "checkpoint", cp + 1,
                           args=("--pubkey", self.pub, "--no-token"))
        # edited into something that is not a record
        lines = list(self.lines)
        lines[i] = lines[i][:-5]
        self.assert_caught(lines, "bad-line", i + 1)

    def test_deleted_record(self):
        i = self.signs[4]
        lines = self.lines[:i] + self.lines[i + 1:]
        prob = self.assert_caught(lines, "deleted", i + 1)
        self.assertIn(f"seq {self.recs[i]['seq']} is missing", prob["what"])
        cp = min(c for c in self.cps if c > i)
        self.assert_caught(rechain(lines, i, renumber=True), "checkpoint", cp)

    def test_inserted_record(self):
        i = self.signs[2]
        lines = self.lines[:i + 1] + [self.lines[i]] + self.lines[i + 1:]
        self.assert_caught(lines, "inserted", i + 2)
        # a new record made to fit the chain: the checkpoint after it catches it
        fake = dict(self.recs[i], req=999)
        lines = self.lines[:i + 1] + [dump(fake)] + self.lines[i + 1:]
        lines = rechain(lines, i + 1, renumber=True)
        cp = min(c for c in self.cps if c > i)
        self.assert_caught(lines, "checkpoint", cp + 2)

    def test_reordered_records(self):
        i = self.signs[5]
        self.assertEqual(self.signs[6], i + 1)
        lines = list(self.lines)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        prob = self.assert_caught(lines, ("deleted", "inserted"), i + 1)
        self.assertIn("reordered", prob["what"])

    def test_truncated_past_checkpoint(self):
        # cut back to just after an earlier checkpoint: every line that stays is fine
        cut = self.cps[-3]
        lines = self.lines[:cut + 1]
        prob = self.assert_caught(lines, "truncated", cut + 1)
        self.assertIn(f"seq {self.recs[self.cps[-1]]['seq']}", prob["what"])
        # cut in the middle of a line
        lines = self.lines[:cut + 3]
        lines[-1] = lines[-1][:40]
        self.assert_caught(lines, "incomplete", cut + 3, final_newline=False)
        # everything after the first line gone
        self.assert_caught(self.lines[:1], "truncated", 1)

    def test_forged_checkpoint(self):
        c = self.cps[-2]
        r = dict(self.recs[c])
        sig = bytearray(base64.b64decode(r["sig"]))
        sig[10] ^= 0x40
        r["sig"] = base64.b64encode(bytes(sig)).decode()
        lines = list(self.lines)
        lines[c] = dump(r)
        self.assert_caught(rechain(lines, c + 1), "checkpoint", c + 1)
        # signed by another key: not one the reviewer trusts
        other = self.e.path("other")
        self.e.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", other], check=0)
        other_pub = self.e.run(["openssl", "pkey", "-in", other, "-pubout"], check=0).stdout
        other_pub = self.e.write("other.pub", other_pub)
        self.assert_caught(self.lines, "unknown-key", self.cps[0] + 1,
                           args=("--pubkey", other_pub, "--no-token"))

    def test_replayed_checkpoint(self):
        old = self.lines[self.cps[0]]
        # copied as it is to the end: its seq and prev give it away
        self.assert_caught(self.lines + [old], "inserted", len(self.lines) + 1)
        # copied and fitted to its new place (seq, prev): the signature does not cover it
        r = json.loads(old)
        r["seq"] = self.recs[-1]["seq"] + 1
        r["prev"] = sha(self.lines[-1])
        prob = self.assert_caught(self.lines + [dump(r)], "checkpoint", len(self.lines) + 1)
        self.assertIn("replayed", prob["what"])
        # put in place of a later checkpoint
        c = self.cps[-2]
        r = json.loads(old)
        r["seq"], r["prev"] = self.recs[c]["seq"], self.recs[c]["prev"]
        lines = list(self.lines)
        lines[c] = dump(r)
        self.assert_caught(rechain(lines, c + 1), "checkpoint", c + 1)


class FailClosed(AuditCase):
    def test_unwritable_log_refuses_to_sign(self):
        w = self.world(log="/dev/full")
        cp = w.sign(msg("secret-mid-1"), check=EX_UNAVAILABLE)
        self.assertEqual(cp.stdout, b"")
        self.assertIn(b"audit record cannot be written", cp.stderr)
        c = RawClient(self.e.socket)
        hs, body = split_message(msg("secret-mid-2"))
        c.send(frame(sign_request_mid(5, hs, body)))
        r = c.recv_response()
        self.assertEqual((r["status"], r["sigs"]), ("AUDIT_UNAVAILABLE", []))
        self.assertIn("/dev/full", r["error"])
        c.close()
        self.assertTrue(w.alive())
        w.stop()

    def test_fail_open_signs_anyway(self):
        w = self.world(log="/dev/full", extra_daemon="audit_fail = open\n")
        out = w.sign(msg("secret-mid-1")).stdout
        w.verify(out, min_sigs=2)
        w.stop()

    def test_missing_directory_refused_at_start(self):
        log = self.e.path("no-such-dir", "audit.jsonl")
        self.world(log=log, start=False)
        cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf, "--check"], check=EX_CONFIG)
        self.assertIn(b"audit_log", cp.stderr)
        self.assertIn(b"no-such-dir", cp.stderr)
        cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf, "-f"], check=EX_CONFIG)
        # the admin acts could not be written either, and said so
        cp = self.e.cli("key", "generate", "--domain", "example.com", "--alg", "ed25519-sha256")
        self.assertIn(b"audit record", cp.stderr)


class KillUnderLoad(AuditCase):
    def test_no_receipt_without_record(self):
        """kill -9 while clients sign: every signature a client received has its record."""
        w = self.world(workers=2)
        hs, body = split_message(msg("secret-mid-load"))
        load = PipelinedLoad(self.e.socket, lambda rid: sign_request_mid(rid, hs, body),
                             clients=4, depth=16, timeout=10).start()
        receipts = load.receipts
        end = time.monotonic() + 30
        while time.monotonic() < end and len(receipts) < 300:
            time.sleep(0.05)
        w.daemon.send_signal(signal.SIGKILL)
        w.daemon.wait(timeout=30)
        load.stop(timeout=30)
        self.assertGreater(len(receipts), 100)
        w.start()
        w.sign(msg("secret-mid-after"))
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        logged = {r["req"] for r in records(self.log)
                  if r["event"] == "sign" and r["outcome"] == "ok"}
        missing = sorted(set(receipts) - logged)
        self.assertEqual(missing, [], f"{len(missing)} receipts without a record")
        self.assert_python_chain(self.log)
        self.assert_intact(self.log)
        starts = [r for r in records(self.log) if r["event"] == "daemon.start"]
        self.assertEqual(len(starts), 2)


class Rotate(AuditCase):
    def test_sighup_reopens_and_links(self):
        w = self.world()
        w.sign(msg("secret-mid-1"))
        old = self.log + ".1"
        os.rename(self.log, old)
        w.sign(msg("secret-mid-2"))  # still into the renamed file
        w.daemon.send_signal(signal.SIGHUP)
        end = time.monotonic() + 30
        while not os.path.exists(self.log) and time.monotonic() < end:
            time.sleep(0.05)
        w.sign(msg("secret-mid-3"))
        w.stop()
        self.assertEqual(records(old)[-1]["event"], "checkpoint")
        self.assertEqual(records(old)[-1]["reason"], "reopen")
        first = records(self.log)[0]
        self.assertEqual((first["event"], first["link"], first["reason"]),
                         ("log.open", "previous", "reopen"))
        self.assertEqual(first["prev"], sha(lines_of(old)[-1]))
        self.assert_python_chain(old, self.log)
        doc = self.assert_intact(old, self.log)
        self.assertEqual(doc["first_seq"], 1)
        self.assertTrue(doc["anchor"]["checked"])
        self.assertEqual(
            len([r for r in records(old) + records(self.log) if r["event"] == "sign"]), 3)
        # the new file alone verifies (with a note); in the wrong order, or with the old
        # file cut at its end, the link breaks
        doc = self.assert_intact(self.log)
        self.assertTrue(any("earlier files" in n for n in doc["notes"]))
        rc, doc, _ = self.verify(self.log, old)
        self.assertEqual((rc, doc["problem"]["kind"]), (EX_NOT_INTACT, "link"))
        cut = self.e.path("old-cut.jsonl")
        write_lines(cut, lines_of(old)[:-1])
        rc, doc, _ = self.verify(cut, self.log)
        self.assertEqual((rc, doc["problem"]["kind"], doc["problem"]["file"], doc["problem"]["line"]),
                         (EX_NOT_INTACT, "link", self.log, 1))


class Rotation(AuditCase):
    def test_rotation_moves_recorded(self):
        w = self.world(algs=("ed25519-sha256",), backup=False, start=False,
                       extra_daemon="step_interval = 1s\n")
        self.e.cli("key", "rotate", "--domain", "example.com", "--alg", "ed25519-sha256")
        pending = [k["selector"] for k in json.loads(self.e.cli("key", "list", "--json").stdout)
                   if k["state"] == "pending"]
        self.assertEqual(len(pending), 1)
        self.e.cli("key", "activate", "--domain", "example.com", "--selector", pending[0],
                   "--force")
        # the daemon's own step starts the next rotation once the key is older than 1 s
        with open(self.e.conf) as f:
            text = f.read()
        self.e.write_config(text.replace("primary = primary\n",
                                         "primary = primary\nrotate_every = 1s\n"))
        w.start()
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if any(r["event"] == "key.started" and "user" not in r for r in records(self.log)):
                break
            time.sleep(0.2)
        w.stop()
        recs = records(self.log)
        by_cli = [(r["event"], r.get("selector")) for r in recs
                  if r["event"].startswith("key.") and "user" in r]
        self.assertIn(("key.started", pending[0]), by_cli)
        self.assertIn(("key.activated", pending[0]), by_cli)
        self.assertIn(("key.rotate", None), by_cli)
        self.assertIn(("key.activate", pending[0]), by_cli)
        self.assertTrue(any(e == "key.retired" for e, _ in by_cli))
        by_daemon = [r for r in recs if r["event"] == "key.started" and "user" not in r]
        self.assertEqual(by_daemon[0]["domain"], "example.com")
        self.assert_intact(self.log)
        doc = json.loads(self.e.cli("audit", "show", self.log, "--json").stdout)
        rows = {(g["client"], g["domain"]): g for g in doc["groups"]}
        user = [r for r in recs if "user" in r][0]["user"]
        self.assertGreaterEqual(rows[(user, "example.com")]["rotations"], 3)
        self.assertGreaterEqual(rows[("dkimkeepd", "example.com")]["rotations"], 1)
        self.assertIn("key.activate", [a["event"] for a in doc["admin_acts"]])


def fault_module():
    """tests/p11fault, built with the project or else on its own (its CMakeLists allows it)."""
    try:
        return p11fault_path()
    except FileNotFoundError:
        pass
    out = os.path.join(os.environ.get("DKIMKEEP_BUILD_DIR", "/tmp"), "audit-p11fault")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "p11fault")
    for argv in (["cmake", "-S", src, "-B", out], ["cmake", "--build", out]):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    os.environ["P11FAULT_LIB"] = os.path.join(out, "p11fault.so")
    return p11fault_path()


class Failover(AuditCase):
    def test_failover_and_recovery_recorded(self):
        w = self.world(extra_daemon="audit_token = backup\nhealth_interval = 1s\n", start=False)
        with open(self.e.conf) as f:
            text = f.read()
        self.e.write_config(text.replace(f"module = {SOFTHSM}\n", f"module = {fault_module()}\n"))
        control = self.e.path("p11fault.control")
        self.e.env.update(P11FAULT_MODULE=SOFTHSM, P11FAULT_CONTROL=control,
                          P11FAULT_STATS=self.e.path("p11fault.stats"))

        def rules(text):
            with open(control + ".new", "w") as f:
                f.write(text)
            os.rename(control + ".new", control)

        rules("")
        w.start()
        w.sign(msg("secret-mid-1"))
        rules("C_Sign every CKR_DEVICE_ERROR token=dk-primary\n")
        for i in range(3):
            w.sign(msg(f"secret-mid-b{i}"))
        rules("")
        end = time.monotonic() + 60
        while time.monotonic() < end:
            st = json.loads(self.e.cli("status", "--json").stdout)
            if all(t["state"] == "up" for t in st["tokens"]):
                break
            time.sleep(0.2)
        w.sign(msg("secret-mid-2"))
        w.stop()
        recs = records(self.log)
        self.assertEqual([(r["event"], r["token"]) for r in recs if r["event"] in ("token.down", "token.up")],
                         [("token.down", "primary"), ("token.up", "primary")])
        down = [r for r in recs if r["event"] == "token.down"][0]
        self.assertIn("error", down)
        backup = [r for r in recs if r["event"] == "sign" and
                  any(s["slot"] == "backup" for s in r.get("sigs", []))]
        self.assertGreaterEqual(len(backup), 3)
        self.assert_intact(self.log)
        doc = json.loads(self.e.cli("audit", "show", self.log, "--json").stdout)
        rows = {(g["client"], g["domain"]): g for g in doc["groups"]}
        self.assertEqual(rows[("dkimkeepd", "-")]["failovers"], 1)
        self.assertEqual(rows[("dkimkeepd", "-")]["recoveries"], 1)
        self.assertGreaterEqual(rows[("tests", "example.com")]["backup"], 3)
        text = self.e.cli("audit", "show", self.log).stdout.decode()
        self.assertIn("token.down", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
