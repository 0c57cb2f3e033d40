"""Known answers from RFC 8463 Appendix A, signed inside a SoftHSM token.

The keys of §A.1 (tests/data/rfc8463/: the Ed25519 seed as PKCS#8, the RSA key
as printed) are imported with "dkimkeep key import"; "dkimkeep key dns" must
publish exactly the records of §A.2; and kat_rfc8463 re-signs each
DKIM-Signature of the §A.3 message in the token (dkim/ hashes, hsm/ signs).
Ed25519 and RSASSA-PKCS1-v1_5 are deterministic, so bh= and b= must equal the
RFC's byte for byte.  dkimpy, with the records our CLI published, verifies the
RFC's message too: the test data is the RFC's, not something our code agrees
with by construction.

The RFC's RSA example is consistent: its b= verifies (dkimpy, below) under
the §A.2 key, so it is tested like the Ed25519 one.  Its key has 1024 bits,
which dkimkeep imports with a warning (RFC 8301).
"""
import json
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import EnvTestCase, prog, DATA, SOFTHSM, EX_OK

RFC = os.path.join(DATA, "rfc8463")
LABEL = "kat-8463"
DOMAIN = "football.example.com"
# RFC 8463 §A.2
RECORDS = {
    "brisbane._domainkey.football.example.com":
        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
    "test._domainkey.football.example.com":
        "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
        "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
        "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
        "Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
}

VERIFY = r"""
import sys, json, dkim
msg = open(sys.argv[1], "rb").read()
recs = {k.encode() + b".": v.encode() for k, v in json.load(open(sys.argv[2])).items()}
def dnsfunc(name, timeout=5):
    return recs.get(name if name.endswith(b".") else name + b".")
d = dkim.DKIM(msg, minkey=1024)
n = len([l for l in msg.split(b"\r\n") if l.lower().startswith(b"dkim-signature:")])
print(json.dumps([bool(d.verify(idx=i, dnsfunc=dnsfunc)) for i in range(n)]))
"""


class KnownAnswers(EnvTestCase):

    def setUp(self):
        super().setUp()
        e = self.e
        e.write_config(e.token_section("primary", LABEL)
                       + f"[domain {DOMAIN}]\nalgorithms = rsa-sha256, ed25519-sha256\n"
                       "primary = primary\n")
        e.init_token("primary", LABEL)
        for sel, pem in (("brisbane", "ed25519.pem"), ("test", "rsa.pem")):
            # Import a copy: the CLI rightly asks for the imported file to be destroyed.
            copy = e.path(pem)
            shutil.copyfile(os.path.join(RFC, pem), copy)
            os.chmod(copy, 0o600)
            e.cli("key", "import", "--domain", DOMAIN, "--selector", sel, "--pem", copy)

    def kat(self, message, check=EX_OK):
        return self.e.run([prog("kat_rfc8463"), SOFTHSM, f"pkcs11:token={LABEL}",
                           self.e.path("primary.pin"), message], check=check)

    def test_published_records_are_the_rfc_records(self):
        recs = {r["name"]: r["value"] for r in json.loads(self.e.cli("key", "dns", "--json").stdout)}
        self.assertEqual(recs, RECORDS)

    def test_token_signatures_equal_the_rfc_byte_for_byte(self):
        out = self.kat(os.path.join(RFC, "message.eml")).stdout.decode()
        lines = out.splitlines()
        self.assertEqual(len(lines), 2, out)
        self.assertTrue(lines[0].startswith("a=ed25519-sha256 s=brisbane d=football.example.com"), out)
        self.assertTrue(lines[1].startswith("a=rsa-sha256 s=test d=football.example.com"), out)
        for line in lines:
            self.assertTrue(line.endswith(" bh=match b=match"), out)

    def test_rfc_message_verifies_with_our_records(self):
        """dkimpy, not our code, judges the RFC message against the records we publish."""
        e = self.e
        recs = {r["name"]: r["value"] for r in json.loads(e.cli("key", "dns", "--json").stdout)}
        path = e.write("records.json", json.dumps(recs))
        cp = e.run(["/usr/bin/python3", "-c", VERIFY, os.path.join(RFC, "message.eml"), path], check=0)
        self.assertEqual(json.loads(cp.stdout), [True, True])

    def test_a_changed_message_does_not_match(self):
        """The comparison can fail: a changed header changes b=, a changed body bh=."""
        e = self.e
        with open(os.path.join(RFC, "message.eml"), "rb") as f:
            msg = f.read()
        header = e.write("header.eml", msg.replace(b"Is dinner ready?", b"Is dinner ready!"))
        cp = self.kat(header, check=1)
        self.assertEqual(cp.stdout.decode().count("bh=match b=MISMATCH"), 2, cp.stdout)
        body = e.write("body.eml", msg.replace(b"hungry yet?", b"hungry yet!"))
        cp = self.kat(body, check=1)
        self.assertEqual(cp.stdout.decode().count("bh=MISMATCH"), 2, cp.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
