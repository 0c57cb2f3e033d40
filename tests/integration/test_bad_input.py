"""Bad input on every outside interface, and the exact outcome of each: the
error text, the exit code or protocol status, the daemon alive, nothing lost.
docs/bad-input.md is the catalogue; each of its rows names the test that
proves it (here or in the other integration tests).

Real programs, real SoftHSM tokens in temp dirs, a real dkimkeepd; DNS
answers come from a UDP server in this file that sends what a malicious or
broken server would; signatures that count are judged by dkimpy.
"""
import json
import os
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (EnvTestCase, prog, p11fault_path, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE,
                     EX_NOPERM, EX_CONFIG)
from daemon_harness import World

EX_IOERR = 74
MSG = (b"From: Joe SixPack <joe@example.com>\r\nTo: Suzie Q <suzie@shopping.example.net>\r\n"
       b"Subject: bad input\r\nMessage-ID: <bad-input@example.com>\r\n\r\nHi.\r\n")


def one_line(test, cp, code, *needles):
    """Exit code, nothing on stdout, one line on stderr holding every needle."""
    err = cp.stderr.decode(errors="replace")
    test.assertEqual(cp.returncode, code, err)
    test.assertEqual(cp.stdout, b"", "nothing on stdout on failure")
    lines = [l for l in err.strip().splitlines() if not l.startswith("dkimkeepd: info:")]
    test.assertEqual(len(lines), 1, err)
    for n in needles:
        test.assertIn(n, lines[0])
    return lines[0]


def read_until(proc, text, timeout=120):
    """The daemon's stderr up to and including the line holding text (it keeps running)."""
    import select
    out, end = b"", time.monotonic() + timeout
    while text.encode() not in out:
        left = end - time.monotonic()
        if left <= 0 or not select.select([proc.stderr], [], [], left)[0]:
            raise AssertionError(f"no {text!r} in the log within {timeout} s: {out.decode()}")
        chunk = os.read(proc.stderr.fileno(), 65536)
        if not chunk:
            raise AssertionError(f"the daemon closed stderr before {text!r}: {out.decode()}")
        out += chunk
    return out.decode(errors="replace")


class ConfigFile(EnvTestCase):
    """Each kind of config error: exit 78 from dkimkeepd --check and from the daemon's start,
    one line naming FILE:LINE, the section and key, and what to write instead."""

    def setUp(self):
        super().setUp()
        self.w = World(self.e, algs=("ed25519-sha256",), backup=False)
        with open(self.e.conf) as f:
            self.base = f.read()
        self.lines = self.base.count("\n")

    CASES = [  # name, edit(base) -> text, line (None: appended after the base), needles
        ("unknown key", lambda b: b.replace("workers = 2\n", "workers = 2\nfrobnicate = 1\n"), 5,
         ["[daemon] frobnicate: unknown key", "the keys of [daemon] are socket"]),
        ("out of range", lambda b: b.replace("workers = 2\n", "workers = 0\n"), 4,
         ['[daemon] workers: "0" is not a whole number from 1 to 64']),
        ("not a number", lambda b: b.replace("workers = 2\n", "workers = many\n"), 4,
         ['[daemon] workers: "many" is not a whole number']),
        ("no equals sign", lambda b: b.replace("workers = 2\n", "workers 2\n"), 4,
         ['neither "key = value" nor "[section]"']),
        ("unknown section", lambda b: b + "[nonsense]\nx = y\n", None,
         ["[nonsense]: unknown section; the sections are [daemon]"]),
        ("key set twice", lambda b: b.replace("workers = 2\n", "workers = 2\nworkers = 3\n"), 5,
         ["[daemon] workers: set twice (first on line 4); keep one"]),
        ("section twice", lambda b: b + "[domain example.com]\nalgorithms = ed25519-sha256\nprimary = primary\n", None,
         ["[domain example.com]: section appears twice", "merge them"]),
        ("unclosed section", lambda b: b + "[domain foo\n", None,
         ["section header without a closing ']'"]),
        ("NUL byte", lambda b: b + "\0\n", None, ["NUL byte in the line"]),
        ("line too long", lambda b: b + "x = " + "a" * 5000 + "\n", None,
         ["line longer than 4096 bytes"]),
        ("undefined token", lambda b: b.replace("primary = primary\n", "primary = nosuch\n"), 14,
         ["[domain example.com] primary: there is no [token nosuch] section"]),
        ("forbidden algorithm", lambda b: b.replace("algorithms = ed25519-sha256",
                                                    "algorithms = rsa-sha1"), 13,
         ["rsa-sha1 must not be used for signing (RFC 8301"]),
        ("bad mode", lambda b: b.replace("socket_mode = 0660", "socket_mode = 0999"), 3,
         ['[daemon] socket_mode: "0999" is not an octal mode']),
        ("client without uid", lambda b: b + "[client x]\ndomains = example.com\n", None,
         ["[client x] uid: a client needs uid, gid or both"]),
    ]

    def test_errors_named_with_file_and_line(self):
        for name, edit, line, needles in self.CASES:
            with self.subTest(name):
                self.e.write_config(edit(self.base))
                line = line if line is not None else self.lines + 1
                where = f"{self.e.conf}:{line}: "
                for argv in (["--check"], ["-f"]):
                    cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf] + argv, timeout=60)
                    one_line(self, cp, EX_CONFIG, where, *needles)
                    self.assertFalse(os.path.exists(self.e.socket), "never listened")
                cp = self.e.cli("key", "list", check=None)
                one_line(self, cp, EX_CONFIG, where, *needles)

    def test_missing_file(self):
        cp = self.e.run([prog("dkimkeepd"), "-c", self.e.path("nope.conf"), "-f"])
        one_line(self, cp, EX_CONFIG, "nope.conf cannot be opened: No such file or directory",
                 "give the right file with -c or $DKIMKEEP_CONF")

    def test_writable_by_others_or_owned_by_another_user(self):
        """The file names the PKCS#11 module dkimkeepd loads: a file others may write,
        or another user's, is refused before anything is loaded."""
        for mode, who in ((0o666, "others"), (0o664, "its group")):
            os.chmod(self.e.conf, mode)
            for argv in (["--check"], ["-f"]):
                cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf] + argv, timeout=60)
                one_line(self, cp, EX_CONFIG, f"config file {self.e.conf} is writable by {who} "
                         f"(mode 0{mode:o})", f'run "chmod go-w {self.e.conf}"')
                self.assertFalse(os.path.exists(self.e.socket), "never listened")
            cp = self.e.cli("key", "list", check=None)
            one_line(self, cp, EX_CONFIG, "is writable by", "chmod go-w")
        os.chmod(self.e.conf, 0o644)
        os.chown(self.e.conf, 65534, 65534)
        cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf, "--check"], timeout=60)
        one_line(self, cp, EX_CONFIG, "belongs to uid 65534, neither root nor",
                 f'run "chown root {self.e.conf}"')
        os.chown(self.e.conf, 0, 0)
        cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf, "--check"], timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stderr)

    def test_bad_reload_keeps_serving(self):
        """SIGHUP with a broken file: refused, logged with the line, the running config
        stays and signs (test_daemon_sign Reload covers a good reload after it)."""
        self.w.start()
        self.w.verify(self.w.sign(MSG).stdout)  # the loop runs (and handles SIGHUP)
        self.e.write_config(self.base.replace("workers = 2\n", "workers = lots\n"))
        self.w.daemon.send_signal(1)
        err = read_until(self.w.daemon, "reload refused")
        for _ in range(3):  # the CLI cannot read the broken file either: --socket
            self.w.verify(self.w.sign(MSG, "--socket", self.e.socket).stdout)
        rc, rest = self.w.stop()
        self.assertEqual(rc, 0, err + rest)
        self.assertRegex(err + rest, r"reload refused, the running configuration stays: .*dkimkeep\.conf:4: "
                                     r'\[daemon\] workers: "lots" is not a whole number')


class PinFiles(EnvTestCase):
    """A PIN file that is not one private line: refused before any login, the daemon never
    starts, the token's retry counter is never touched."""

    def setUp(self):
        super().setUp()
        self.w = World(self.e, algs=("ed25519-sha256",), backup=False)
        self.pin = self.e.path("primary.pin")

    def start(self, code, *needles):
        for argv in (["--check"], ["-f"]):
            cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf] + argv, timeout=60)
            line = one_line(self, cp, code, self.pin, *needles)
            self.assertNotIn("1234", line)
            self.assertFalse(os.path.exists(self.e.socket))

    def test_readable_by_others(self):
        os.chmod(self.pin, 0o644)
        self.start(EX_CONFIG, f"{self.e.conf}:10:", "is readable by others (mode 0644)",
                   f'run "chmod 0400 {self.pin}"')

    def test_missing(self):
        os.unlink(self.pin)
        self.start(EX_CONFIG, f"{self.e.conf}:10:", "does not exist; create it (mode 0400")

    def test_not_a_file_or_a_link(self):
        os.unlink(self.pin)
        os.mkdir(self.pin)
        self.start(EX_CONFIG, "is not a regular file")
        os.rmdir(self.pin)
        os.symlink(self.e.path("backup.so.pin"), self.pin)
        self.start(EX_CONFIG, "is a symbolic link; secrets are opened without following links")

    def test_empty_too_long_or_binary(self):
        for name, content in (("empty", ""), ("newline only", "\n"), ("257 characters", "1" * 257 + "\n"),
                              ("NUL byte", "12\x0034\n"), ("two lines", "1234\n5678\n")):
            with self.subTest(name):
                self.e.write("primary.pin", content, 0o600)
                self.start(EX_DATAERR, "[token primary]: PIN file",
                           "must hold one PIN of 1 to 256 characters on one line")
        self.e.pin("primary.pin", "1234")
        self.w.start()
        self.w.verify(self.w.sign(MSG).stdout)


class TokenStates(EnvTestCase):
    """A token that is not there, or refuses the login: the daemon does not start (no
    socket), says which token and what to do, and logs in exactly once."""

    def test_token_missing(self):
        """--check: 69 naming the URI and the tokens the module sees.  The daemon itself
        starts with the token down (it may come back: the health check retries), shows it
        in status, and refuses to sign with NO_KEY (69) instead of failing anything else."""
        w = World(self.e, algs=("ed25519-sha256",), backup=False)
        self.e.write_config(open(self.e.conf).read().replace("token=dk-primary", "token=no-such"))
        cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf, "--check"], timeout=60)
        one_line(self, cp, EX_UNAVAILABLE, "cannot open the tokens",
                 'no initialized token matches "pkcs11:token=no-such"', 'it sees: "dk-primary"')
        w.start()
        st = json.loads(self.e.cli("status", "--json").stdout)
        self.assertEqual([(t["name"], t["state"]) for t in st["tokens"]], [("primary", "down")])
        self.assertIn("token not found", st["tokens"][0]["last_error"])
        cp = w.sign(MSG, check=None)
        one_line(self, cp, EX_UNAVAILABLE, "NO_KEY: no usable ed25519-sha256 key for example.com")
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        self.assertIn('the primary token "primary" is down', err)

    def test_pin_locked_never_retried(self):
        """CKR_PIN_LOCKED on C_Login (p11fault): 77, one C_Login, the PIN file named."""
        w = World(self.e, algs=("ed25519-sha256",), backup=False)
        control, stats = self.e.path("p11fault.control"), self.e.path("p11fault.stats")
        with open(control, "w") as f:
            f.write("C_Login every CKR_PIN_LOCKED\n")
        self.e.write_config(open(self.e.conf).read().replace(
            "module = /usr/lib/softhsm/libsofthsm2.so", f"module = {p11fault_path()}"))
        env = {"P11FAULT_CONTROL": control, "P11FAULT_STATS": stats}
        cp = self.e.run([prog("dkimkeepd"), "-c", self.e.conf, "-f"], env=env, timeout=60)
        line = one_line(self, cp, EX_NOPERM, "CKR_PIN_LOCKED", "[token primary]",
                        self.e.path("primary.pin"))
        self.assertFalse(os.path.exists(self.e.socket))
        with open(stats) as f:
            calls = f.read()
        self.assertRegex(calls, r'"C_Login"\s*:\s*1\b' if calls.lstrip().startswith("{")
                         else r"\bC_Login\s+1\b", calls)
        del w, line


class DnsAnswers(EnvTestCase):
    """`dkimkeep dns check` against a server that answers badly on purpose: every answer
    is a named problem (exit 1, one issue per record), never a pass, never a crash."""

    def setUp(self):
        super().setUp()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answer = None  # fn(query bytes) -> bytes to send, or None for silence
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()
        self.addCleanup(self.close)
        self.w = World(self.e, algs=("ed25519-sha256",), backup=False,
                       extra=f"[dns]\nresolver = 127.0.0.1:{self.port}\n")
        self.rec = self.w.refresh_records()[0]
        self.name = self.rec["name"].rstrip(".")

    def close(self):
        self.stop.set()
        self.thread.join(timeout=10)
        self.sock.close()

    def serve(self):
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            out = self.answer(data) if self.answer else None
            if out is not None:
                self.sock.sendto(out, addr)

    def txt_answer(self, *values, cname=None, rcode=0, tc=False):
        import dns.message
        import dns.rrset

        def answer(data):
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            r.flags |= 0x0400 | (0x0200 if tc else 0)
            r.set_rcode(rcode)
            qname = q.question[0].name
            if cname:
                for a, b in cname:
                    r.answer.append(dns.rrset.from_text(a + ".", 60, "IN", "CNAME", b + "."))
            for v in values:
                rr = dns.rrset.from_text(qname, 60, "IN", "TXT", "x")
                if not isinstance(v, list):
                    v = [v[i:i + 255] for i in range(0, len(v), 255)]
                rd = rr[0].__class__(rr[0].rdclass, rr[0].rdtype, v)
                r.answer.append(dns.rrset.from_rdata(qname, 60, rd))
            return r.to_wire(max_size=65535)
        return answer

    def issue(self, code):
        cp = self.e.cli("dns", "check", "--json", check=1, timeout=120)
        res = json.loads(cp.stdout)
        self.assertEqual(len(res), 1)
        self.assertFalse(res[0]["ok"])
        self.assertEqual([i["code"] for i in res[0]["issues"]], [code], res)
        return res[0]["issues"][0]["text"]

    def test_good_answer_passes(self):
        self.answer = self.txt_answer(self.rec["value"].encode())
        res = json.loads(self.e.cli("dns", "check", "--json").stdout)
        self.assertTrue(res[0]["ok"], res)

    def test_not_a_key_and_bad_base64(self):
        self.answer = self.txt_answer(b"\x00\xff\x01binary \xfe garbage")
        self.issue("bad-record")
        self.answer = self.txt_answer(b"v=DKIM1; k=ed25519; p=!!!not*base64!!!")
        self.issue("wrong-key")
        self.answer = self.txt_answer(b"v=DKIM1; k=ed25519; p=" + b"A" * 400)
        self.issue("wrong-key")

    def test_too_many_or_too_long_records(self):
        self.answer = self.txt_answer(*[b"v=DKIM1; p=%d" % i for i in range(200)])
        detail = json.dumps(self.e.cli("dns", "check", "--json", check=1).stdout.decode())
        self.assertIn("more or longer TXT records than dkimkeep reads", detail)
        self.answer = self.txt_answer([b"A" * 255] * 240)  # one record of 60 kB
        detail = self.e.cli("dns", "check", check=1).stdout.decode()
        self.assertIn("lookup-failed", detail)
        self.assertIn("more or longer TXT records than dkimkeep reads", detail)

    def test_cname_loop_and_long_chain(self):
        self.answer = self.txt_answer(cname=[(self.name, "a.example.com"),
                                             ("a.example.com", self.name)])
        out = self.e.cli("dns", "check", check=1, timeout=120).stdout.decode()
        self.assertIn("lookup-failed", out)
        self.assertRegex(out, "CNAME loop")
        chain = [(self.name, "c0.example.com")] + [(f"c{i}.example.com", f"c{i + 1}.example.com")
                                                   for i in range(40)]
        self.answer = self.txt_answer(cname=chain)
        out = self.e.cli("dns", "check", check=1, timeout=120).stdout.decode()
        self.assertIn("lookup-failed", out)
        self.assertRegex(out, "CNAME")

    def test_malformed_packets_and_silence(self):
        value = self.rec["value"].encode()
        for name, fn, code, text in (
                ("header only", lambda q: q[:2] + b"\x84\x00" + b"\x00\x01\x00\x01\x00\x00\x00\x00",
                 "lookup-failed", "no answer"),
                ("truncated answer", lambda q: self.txt_answer(value)(q)[:-20],
                 "lookup-failed", "no answer"),
                # ldns drops the looping name: no record, which is a problem too
                ("compression loop", lambda q: q[:2] + b"\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00"
                 + q[12:] + struct.pack(">H", 0xC000 | len(q))  # a name pointing at itself
                 + b"\x00\x10\x00\x01\x00\x00\x00\x3c\x00\x02\x01x",
                 "signing-unpublished", "no TXT record"),
                # a forged answer (another query's ID) carrying the right key is not believed
                ("wrong id", lambda q: bytes([q[0] ^ 0xFF]) + self.txt_answer(value)(q)[1:],
                 "lookup-failed", "does not match the query"),
                ("answer to another name", lambda q: self.txt_answer(value)(
                    q.replace(b"\x0fs", b"\x0fS").replace(b"_domainkey", b"_domainkex")),
                 "lookup-failed", "does not match the query"),
                ("random bytes", lambda q: os.urandom(300), "lookup-failed", "no answer"),
                ("SERVFAIL", self.txt_answer(rcode=2), "lookup-failed", "SERVFAIL or REFUSED"),
                ("silence", lambda q: None, "lookup-failed", "no answer; is the server up?")):
            with self.subTest(name):
                self.answer = fn
                cp = self.e.cli("dns", "check", "--json", check=1, timeout=120)
                res = json.loads(cp.stdout)
                self.assertEqual([i["code"] for i in res[0]["issues"]], [code], res)
                self.assertIn(text, res[0]["issues"][0]["text"])
        self.answer = self.txt_answer(self.rec["value"].encode())
        self.e.cli("dns", "check")


class AuditFiles(EnvTestCase):
    """Corrupt audit files given to `audit verify` and `audit show`: verify names the line
    and exits 65 (not intact); show counts the unreadable lines and goes on; a file that
    cannot be read is 74.  (Tampering by someone who knows the format: test_audit Tamper.)"""

    def setUp(self):
        super().setUp()
        self.log = self.e.path("audit.jsonl")
        w = World(self.e, algs=("ed25519-sha256",), backup=False,
                  extra_daemon=f"audit_log = {self.log}\n")
        w.start()
        for _ in range(3):
            w.sign(MSG)
        rc, err = w.stop()
        self.assertEqual(rc, 0, err)
        with open(self.log, "rb") as f:
            self.good = f.read()
        self.n = self.good.count(b"\n")

    def variant(self, data):
        p = self.e.path("variant.jsonl")
        with open(p, "wb") as f:
            f.write(data)
        return p

    def verify(self, p):
        cp = self.e.cli("audit", "verify", "--json", p, check=None, timeout=120)
        self.assertEqual(cp.returncode, EX_DATAERR, cp.stderr)
        doc = json.loads(cp.stdout)
        self.assertFalse(doc["intact"])
        return doc

    def show(self, p, unreadable):
        cp = self.e.cli("audit", "show", p, timeout=120)
        if unreadable:
            self.assertIn(f"WARNING: {unreadable} lines are not readable records".encode(), cp.stdout)
        else:
            self.assertNotIn(b"WARNING", cp.stdout)
        return cp

    def test_good_log(self):
        cp = self.e.cli("audit", "verify", "--json", self.log)
        self.assertTrue(json.loads(cp.stdout)["intact"])
        self.show(self.log, 0)

    def test_garbage_lines(self):
        lines = self.good.split(b"\n")
        for name, data, line in (
                ("binary line", b"\n".join(lines[:2] + [os.urandom(200).replace(b"\n", b"x")] + lines[2:]), 3),
                ("not JSON", b"\n".join(lines[:2] + [b"hello"] + lines[2:]), 3),
                ("NUL in a record", self.good.replace(b'"event"', b'"ev\x00nt"', 1), 1),
                ("JSON but no record", b"\n".join(lines[:2] + [b'{"v":1}'] + lines[2:]), 3),
                ("line over 64 KiB", b"\n".join(lines[:2] + [b'{"v":1,"x":"' + b"a" * 200000 + b'"}']
                                                + lines[2:]), 3)):
            with self.subTest(name):
                p = self.variant(data)
                doc = self.verify(p)
                text = json.dumps(doc)
                self.assertRegex(text, rf"\b{line}\b")
                self.show(p, 1)

    def test_empty_and_unreadable_files(self):
        doc = self.verify(self.variant(b""))
        self.assertIn("empty", json.dumps(doc).lower())
        cp = self.e.cli("audit", "verify", self.e.path("none.jsonl"), check=EX_IOERR)
        self.assertIn(b"none.jsonl", cp.stderr)
        cp = self.e.cli("audit", "show", self.e.path("none.jsonl"), check=EX_IOERR)
        self.assertIn(b"none.jsonl", cp.stderr)
        self.show(self.variant(os.urandom(5000).replace(b"\n", b"")), 1)


class CommandLine(EnvTestCase):
    """Bad arguments to every program: 64, nothing on stdout, a line saying what was wrong
    (and the usage where getopt is the judge)."""

    def test_bad_arguments_exit_64(self):
        World(self.e, algs=("ed25519-sha256",), backup=False)
        c = ["-c", self.e.conf]
        cases = [
            ([prog("dkimkeepd"), "--bogus"], ["unrecognized option '--bogus'", "usage: dkimkeepd"]),
            ([prog("dkimkeepd"), "-c"], ["option requires an argument -- 'c'", "usage: dkimkeepd"]),
            ([prog("dkimkeepd"), "-f", "extra"], ['unexpected argument "extra"']),
            ([prog("dkimkeep")], ["usage: dkimkeep"]),
            ([prog("dkimkeep"), "frob"], ['unknown command "frob"']),
            ([prog("dkimkeep")] + c + ["sign", "--domain"], ['sign: bad option "--domain"']),
            ([prog("dkimkeep")] + c + ["sign", "--alg", "rsa-sha1"], []),
            ([prog("dkimkeep")] + c + ["key", "generate", "--domain", "example.com", "--alg", "dsa"],
             ['--alg must be rsa-sha256 or ed25519-sha256, not "dsa"']),
            ([prog("dkimkeep")] + c + ["audit", "verify"], ["audit verify needs the log files"]),
            ([prog("dkimkeep")] + c + ["audit", "show", "--bogus"], ['audit show: bad option "--bogus"']),
            ([prog("dkimkeep")] + c + ["status", "--socket"], ['status: bad option "--socket"']),
            ([prog("dkimkeep-milter"), "--bogus"], ['unknown option "--bogus"']),
            ([prog("dkimkeep-bench"), "--bogus"], ["unrecognized option '--bogus'"]),
        ]
        for argv, needles in cases:
            with self.subTest(" ".join(os.path.basename(a) for a in argv)):
                cp = self.e.run(argv, input=MSG, timeout=60)
                err = cp.stderr.decode(errors="replace")
                self.assertEqual(cp.returncode, EX_USAGE, err)
                self.assertEqual(cp.stdout, b"")
                self.assertTrue(err.strip(), "says what was wrong")
                for n in needles:
                    self.assertIn(n, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
