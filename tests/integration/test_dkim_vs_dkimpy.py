"""dkim/ judged by dkimpy, not by itself.

For every message of tests/data/canon/ (CRLF and LF, folded and repeated
headers, trailing white space, empty and white-space-only bodies, long
lines, 8-bit bytes, tabs, lone CRs), dkim_tool (a thin driver of dkim/)
and dkimpy's own canonicalization must give the same body hashes, fed in
one piece and in small chunks, and the same header hashes for several h=
lists and signature fields.  Then messages signed by dkim_tool with dkim/'s
DKIM-Signature assembly (RSA and Ed25519 keys made here with openssl) must
verify with dkim.verify().

Run with Debian's /usr/bin/python3, which has dkimpy.
"""
import base64
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import dkim  # noqa: E402
from dkim.canonicalization import CanonicalizationPolicy  # noqa: E402

CORPUS = os.path.join(harness.DATA, "canon")
CANONS = (b"simple", b"relaxed")

# h= lists as a signer or verifier may see them: plain, white space around
# colons (RFC 8463's example), folded, repeated and over-signed names,
# names that no message has, mixed case.
HLISTS = (
    b"from:to:subject:date:message-id",
    b"from : to :\r\n\tsubject : date : message-id : from : subject : date",
    b"received:received:received:received:From:To:to:SUBJECT:subject:x-missing:"
    b"dkim-signature:authentication-results:x-empty:x-blank:content-type:references",
)

# Signature fields with b= empty, as dkim_sig_build() makes them and as
# other signers fold them.
SIGFIELDS = (
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel;\r\n"
    b"\th=from:to:subject; bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=; b=",
    b"DKIM-Signature:  v=1;  a=ed25519-sha256;\r\n   c=simple/simple;\td=Example.COM;"
    b" s=s1;\r\n h=from : to;\r\n bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n b=",
)


def dkim_tool():
    """The built dkim_tool; harness.prog() does not look in tests/tools/."""
    try:
        return harness.prog("dkim_tool")
    except FileNotFoundError:
        p = os.path.join(harness.BUILD, "tests", "tools", "dkim_tool")
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
        raise


def corpus():
    files = sorted(glob.glob(os.path.join(CORPUS, "*.eml")))
    if len(files) < 20:
        raise AssertionError(f"corpus {CORPUS} has {len(files)} messages, expected 20 or more")
    return files


def read(path):
    with open(path, "rb") as f:
        return f.read()


def b64(data):
    return base64.b64encode(data).decode()


def as_delivered(msg):
    """The message as a receiver sees it: SMTP ends the data with a line end
    (RFC 5321 §4.1.1.4).  dkim/ hashes an unterminated last line that way;
    dkimpy would keep its trailing white space under relaxed."""
    return msg if msg.endswith(b"\n") else msg + b"\r\n"


def dkimpy_body_hash(msg, canon):
    _, body = dkim.rfc822_parse(as_delivered(msg))
    policy = CanonicalizationPolicy.from_c_value(b"simple/" + canon)
    return b64(hashlib.sha256(policy.canonicalize_body(body)).digest())


def dkimpy_header_hash(msg, canon, hlist, sigfield):
    headers, _ = dkim.rfc822_parse(msg)
    policy = CanonicalizationPolicy.from_c_value(canon + b"/simple")
    include = [x.strip().lower() for x in hlist.split(b":")]
    name, value = sigfield.split(b":", 1)
    h = hashlib.sha256()
    dkim.hash_headers(h, policy, policy.canonicalize_headers(headers), include,
                      (name, value), {})
    return b64(h.digest())


def run_tool(args):
    cp = subprocess.run([dkim_tool()] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        timeout=120)
    if cp.returncode != 0:
        raise AssertionError(f"dkim_tool {args[:3]}...: exit {cp.returncode}: "
                             f"{cp.stderr.decode(errors='replace')}")
    return cp.stdout


def tool_hashes(path, canon, chunk=0, hlist=None, sigfield=None):
    args = ["hash", "-c", canon.decode(), "-k", str(chunk)]
    if hlist is not None:
        args += ["-h", hlist, "-s", sigfield]
    out = {}
    for line in run_tool(args + [path]).decode().splitlines():
        k, v = line.split("=", 1)
        out[k] = v
    return out


class CorpusTest(unittest.TestCase):

    def test_corpus_variety(self):
        """The corpus holds what it claims: both line ends, 8-bit, tabs, lone CR, empty body."""
        msgs = [read(p) for p in corpus()]
        self.assertTrue(any(b"\r\n" in m for m in msgs))
        self.assertTrue(any(b"\r\n" not in m for m in msgs))
        self.assertTrue(any(any(c >= 0x80 for c in m) for m in msgs))
        self.assertTrue(any(b"\t" in m for m in msgs))
        self.assertTrue(any(b"\r" in m.replace(b"\r\n", b"") for m in msgs))
        self.assertTrue(any(m.endswith(b"\r\n\r\n") and m.count(b"\r\n\r\n") == 1 for m in msgs))

    def test_body_hashes(self):
        for path in corpus():
            msg = read(path)
            for canon in CANONS:
                want = dkimpy_body_hash(msg, canon)
                for chunk in (0, 1, 2, 7, 4096):
                    with self.subTest(msg=os.path.basename(path), canon=canon, chunk=chunk):
                        self.assertEqual(tool_hashes(path, canon, chunk)["bh"], want)

    def test_header_hashes(self):
        for path in corpus():
            msg = read(path)
            for canon in CANONS:
                for hlist in HLISTS:
                    for sigfield in SIGFIELDS:
                        with self.subTest(msg=os.path.basename(path), canon=canon,
                                          hlist=hlist[:40], sig=sigfield[:40]):
                            got = tool_hashes(path, canon, 0, hlist, sigfield)["hh"]
                            self.assertEqual(got, dkimpy_header_hash(msg, canon, hlist, sigfield))


class SignVerifyTest(unittest.TestCase):
    """dkim/ builds and folds the signature; dkimpy verifies it."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dkimkeep-dkimpy-")
        cls.keys = {}
        for alg, gen in (("rsa-sha256", ["-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048"]),
                         ("ed25519-sha256", ["-algorithm", "ed25519"])):
            key = os.path.join(cls.dir, alg + ".pem")
            subprocess.run(["openssl", "genpkey"] + gen + ["-out", key], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                                 check=True, stdout=subprocess.PIPE).stdout
            if alg == "ed25519-sha256":
                rec = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:])
            else:
                rec = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
            cls.keys[alg] = (key, rec)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def dns(self, alg):
        def lookup(name, timeout=5):
            if name == b"sel._domainkey.example.com.":
                return self.keys[alg][1]
            return None
        return lookup

    def sign(self, path, alg, canon, extra=()):
        args = ["sign", "-c", canon, "-a", alg, "-d", "example.com", "-s", "sel",
                "-K", self.keys[alg][0]] + list(extra) + [path]
        return run_tool(args)

    def check_field(self, signed):
        """The DKIM-Signature field: lines of at most 78 columns even with the
        fold's TAB expanded, folds CRLF TAB, b= last."""
        end = signed.index(b"\r\n", 0)
        while signed[end + 2:end + 3] == b"\t":
            end = signed.index(b"\r\n", end + 2)
        field = signed[:end]
        for line in field.split(b"\r\n"):
            self.assertLessEqual(len(line.expandtabs(8)), 78, field)
            self.assertNotIn(b"\t", line[1:])
            self.assertNotIn(b"\n", line)
            self.assertNotIn(b"\r", line)
        self.assertTrue(field.startswith(b"DKIM-Signature: v=1; a="))
        tags = [t.split(b"=", 1)[0].strip() for t in field.split(b":", 1)[1].split(b";")]
        self.assertEqual(tags[-1], b"b")
        self.assertEqual(tags[:5], [b"v", b"a", b"c", b"d", b"s"])

    def test_sign_verify_corpus(self):
        for path in corpus():
            for alg in self.keys:
                for canon in ("simple/simple", "simple/relaxed", "relaxed/simple",
                              "relaxed/relaxed"):
                    with self.subTest(msg=os.path.basename(path), alg=alg, canon=canon):
                        signed = self.sign(path, alg, canon, ["-O", "from:subject:date:to:cc"])
                        self.check_field(signed)
                        self.assertTrue(dkim.verify(as_delivered(signed),
                                                    dnsfunc=self.dns(alg)), signed[:600])

    def test_sign_verify_options(self):
        path = os.path.join(CORPUS, "04-repeated-headers.eml")
        now = int(time.time())
        for alg in self.keys:
            with self.subTest(alg=alg):
                signed = self.sign(path, alg, "relaxed/relaxed", [
                    "-H", "from:to:subject:date:received:message-id:references",
                    "-O", "from:to:subject:reply-to", "-i", "joe;x=1@mail.example.com",
                    "-t", str(now), "-x", "3600"])
                self.check_field(signed)
                d = dkim.DKIM(signed)
                self.assertTrue(d.verify(dnsfunc=self.dns(alg)))
                h = [x.strip() for x in d.signature_fields[b"h"].split(b":")]
                self.assertEqual(h, [b"from", b"to", b"to", b"subject", b"subject", b"date",
                                     b"received", b"received", b"received",
                                     b"from", b"to", b"subject", b"reply-to"])
                self.assertEqual(d.signature_fields[b"i"], b"joe=3Bx=3D1@mail.example.com")
                self.assertEqual(int(d.signature_fields[b"x"]), now + 3600)

    def test_tampering_detected(self):
        """The verifier is not blind: a changed over-signed header or body fails."""
        path = os.path.join(CORPUS, "01-plain-crlf.eml")
        for alg in self.keys:
            signed = self.sign(path, alg, "relaxed/relaxed", ["-O", "from:subject"])
            self.assertTrue(dkim.verify(signed, dnsfunc=self.dns(alg)))
            added = signed.replace(b"\r\nFrom:", b"\r\nSubject: free money\r\nFrom:", 1)
            self.assertFalse(dkim.verify(added, dnsfunc=self.dns(alg)))
            body = signed.replace(b"hungry", b"angry", 1)
            self.assertFalse(dkim.verify(body, dnsfunc=self.dns(alg)))


class FromTest(unittest.TestCase):

    def test_from_domains(self):
        want = {"01-plain-crlf.eml": "football.example.com", "03-folded-headers.eml": "example.com",
                "11-8bit.eml": "example.com", "17-header-ws-variants.eml": "example.com"}
        for name, dom in want.items():
            with self.subTest(msg=name):
                out = run_tool(["from", os.path.join(CORPUS, name)]).decode().strip()
                self.assertEqual(out, dom)


if __name__ == "__main__":
    unittest.main()
