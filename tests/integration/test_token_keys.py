"""Tokens and keys end to end: a real SoftHSM token, the real dkimkeep CLI, and
judges that are not our code: pkcs11-tool (OpenSC), a PKCS#11 reader written
here with ctypes straight against SoftHSM, OpenSSL, and OpenSSL through
libp11's engine.

pkcs11-tool 0.23 cannot read private keys at all ("reading private keys not
(yet) supported"), so it cannot show that a key refuses to be read; the
ctypes reader asks SoftHSM for CKA_VALUE / CKA_PRIVATE_EXPONENT itself and
must get CKR_ATTRIBUTE_SENSITIVE.
"""
import base64
import ctypes
import glob
import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (EnvTestCase, SOFTHSM, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_NOPERM,
                     EX_CONFIG)

PYTHON = sys.executable or "/usr/bin/python3"
SPY = (glob.glob("/usr/lib/*/pkcs11/pkcs11-spy.so") or ["/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so"])[0]
EX_IOERR = 74
LABEL = "dkim-primary"
PIN = "1234"

# -- an independent PKCS#11 reader (ctypes, no dkimkeep code) ------------------

CKA = {
    "CLASS": 0x0, "TOKEN": 0x1, "PRIVATE": 0x2, "LABEL": 0x3, "APPLICATION": 0x10, "VALUE": 0x11,
    "KEY_TYPE": 0x100, "ID": 0x102, "SENSITIVE": 0x103, "ENCRYPT": 0x104, "DECRYPT": 0x105,
    "WRAP": 0x106, "UNWRAP": 0x107, "SIGN": 0x108, "SIGN_RECOVER": 0x109, "VERIFY": 0x10A,
    "DERIVE": 0x10C, "MODULUS": 0x120, "PUBLIC_EXPONENT": 0x122, "PRIVATE_EXPONENT": 0x123,
    "PRIME_1": 0x124, "EXTRACTABLE": 0x162, "LOCAL": 0x163, "NEVER_EXTRACTABLE": 0x164,
    "ALWAYS_SENSITIVE": 0x165, "MODIFIABLE": 0x170, "EC_PARAMS": 0x180, "EC_POINT": 0x181,
    "ALLOWED_MECHANISMS": 0x40000600,
}
CKO = {0: "data", 2: "public", 3: "private"}
CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_EDDSA = 0x1, 0x40, 0x1057
CKR_ATTRIBUTE_SENSITIVE = 0x11
BOOLS = ("TOKEN", "PRIVATE", "SENSITIVE", "ENCRYPT", "DECRYPT", "WRAP", "UNWRAP", "SIGN",
         "SIGN_RECOVER", "VERIFY", "DERIVE", "EXTRACTABLE", "LOCAL", "NEVER_EXTRACTABLE",
         "ALWAYS_SENSITIVE", "MODIFIABLE")
BYTES = ("LABEL", "APPLICATION", "ID", "EC_PARAMS", "EC_POINT", "MODULUS", "PUBLIC_EXPONENT")


class _Attr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_ulong), ("pValue", ctypes.c_void_p), ("ulValueLen", ctypes.c_ulong)]


def p11_dump(module, label, pin):
    """Every object of the token labelled label, as seen after a user login."""
    lib = ctypes.CDLL(module)
    ul = ctypes.c_ulong

    def ck(rv, what):
        if rv != 0:
            raise RuntimeError(f"{what}: CK_RV 0x{rv:x}")

    ck(lib.C_Initialize(None), "C_Initialize")
    n = ul(0)
    ck(lib.C_GetSlotList(1, None, ctypes.byref(n)), "C_GetSlotList")
    slots = (ul * max(n.value, 1))()
    ck(lib.C_GetSlotList(1, slots, ctypes.byref(n)), "C_GetSlotList")
    slot = None
    for i in range(n.value):
        info = ctypes.create_string_buffer(1024)
        ck(lib.C_GetTokenInfo(ul(slots[i]), info), "C_GetTokenInfo")
        if info.raw[:32].decode().rstrip() == label:
            slot = slots[i]
    if slot is None:
        raise RuntimeError(f"no token {label}")
    h = ul(0)
    ck(lib.C_OpenSession(ul(slot), ul(6), None, None, ctypes.byref(h)), "C_OpenSession")
    ck(lib.C_Login(h, ul(1), pin.encode(), ul(len(pin))), "C_Login")
    ck(lib.C_FindObjectsInit(h, None, ul(0)), "C_FindObjectsInit")
    objs, cnt = (ul * 4096)(), ul(0)
    ck(lib.C_FindObjects(h, objs, ul(4096), ctypes.byref(cnt)), "C_FindObjects")
    lib.C_FindObjectsFinal(h)

    def get(o, t):
        a = _Attr(t, None, 0)
        rv = lib.C_GetAttributeValue(h, ul(o), ctypes.byref(a), ul(1))
        if rv != 0 or a.ulValueLen == ul(-1).value:
            return rv, None
        buf = ctypes.create_string_buffer(a.ulValueLen)
        a.pValue = ctypes.cast(buf, ctypes.c_void_p)
        rv = lib.C_GetAttributeValue(h, ul(o), ctypes.byref(a), ul(1))
        return rv, buf.raw[:a.ulValueLen] if rv == 0 else None

    out = []
    for i in range(cnt.value):
        o = objs[i]
        rv, v = get(o, CKA["CLASS"])
        obj = {"class": CKO.get(int.from_bytes(v, "little"), "other")}
        for name in BOOLS:
            rv, v = get(o, CKA[name])
            obj[name] = None if v is None else v != b"\x00"
        for name in BYTES:
            rv, v = get(o, CKA[name])
            obj[name] = None if v is None else v.hex()
        rv, v = get(o, CKA["ALLOWED_MECHANISMS"])
        obj["ALLOWED_MECHANISMS"] = None if v is None else sorted(
            int.from_bytes(v[j:j + 8], "little") for j in range(0, len(v), 8))
        rv, v = get(o, CKA["KEY_TYPE"])
        obj["KEY_TYPE"] = None if v is None else int.from_bytes(v, "little")
        if obj["class"] == "private":
            for name in ("VALUE", "PRIVATE_EXPONENT", "PRIME_1"):
                rv, v = get(o, CKA[name])
                obj["read_" + name] = {"rv": rv, "got_value": v is not None}
        if obj["class"] == "data":
            rv, v = get(o, CKA["VALUE"])
            obj["VALUE"] = None if v is None else v.decode(errors="replace")
        out.append(obj)
    lib.C_Logout(h)
    lib.C_CloseSession(h)
    lib.C_Finalize(None)
    return out


# -- helpers -------------------------------------------------------------------

def config(e, label=LABEL, module=None, domains=("example.com",), extra=""):
    text = e.token_section("primary", label, module=module)
    for d in domains:
        text += f"[domain {d}]\nalgorithms = rsa-sha256, ed25519-sha256\nprimary = primary\n\n"
    return e.write_config(text + extra)


def setup_token(e, **kw):
    config(e, **kw)
    e.init_token("primary", kw.get("label", LABEL))


def dump(e, label=LABEL):
    cp = e.run([PYTHON, os.path.abspath(__file__), "--p11-dump", SOFTHSM, label, PIN], check=0)
    return json.loads(cp.stdout)


def pkcs11_tool(e, *args, login=True, check=0):
    argv = ["pkcs11-tool", "--module", SOFTHSM, "--token-label", LABEL]
    if login:
        argv += ["--login", "--pin", PIN]
    return e.run(argv + list(args), check=check)


def read(path, mode="rb"):
    with open(path, mode, **({} if "b" in mode else {"errors": "replace"})) as f:
        return f.read()


def openssl(e, *args, input=None, check=0):
    return e.run(["openssl"] + list(args), input=input, check=check)


def keys_json(e, *args):
    return json.loads(e.cli("key", "list", "--json", *args).stdout)


def dns_json(e, *args):
    return json.loads(e.cli("key", "dns", "--json", *args).stdout)


def p_value(value):
    m = re.search(r"(?:^|;)\s*p=([^;]*)", value)
    return base64.b64decode(m.group(1).strip()) if m else None


def pem_public_der(e, pem):
    return openssl(e, "pkey", "-in", pem, "-pubout", "-outform", "DER").stdout


def failed_cleanly(test, cp, code, *needles):
    """Exit code, one line on stderr naming what failed, nothing on stdout."""
    err = cp.stderr.decode(errors="replace")
    test.assertEqual(cp.returncode, code, err)
    test.assertEqual(cp.stdout, b"", "nothing on stdout on failure")
    lines = [ln for ln in err.splitlines() if not ln.startswith("dkimkeep: warning:")]
    test.assertEqual(len(lines), 1, err)
    test.assertTrue(lines[0].startswith("dkimkeep: "), err)
    for n in needles:
        test.assertIn(n, err)
    return err


def selector_prefix():
    return "s" + time.strftime("%Y%m", time.gmtime())


# -- tests ---------------------------------------------------------------------

class TokenInit(EnvTestCase):

    def test_list_init_and_refusal_without_wipe(self):
        e = self.e
        config(e)
        before = json.loads(e.cli("token", "list", "--json").stdout)
        self.assertTrue(any(not t["initialized"] for t in before))
        self.assertFalse(any(t["label"] == LABEL for t in before))

        so = e.pin("primary.so.pin", "87654321")
        cp = e.cli("token", "init", "--token", "primary", "--label", LABEL, "--so-pin-file", so,
                   "--pin-file", e.path("primary.pin"))
        self.assertIn(LABEL.encode(), cp.stdout)
        self.assertNotIn(b"warning", cp.stderr)
        toks = [t for t in json.loads(e.cli("token", "list", "--json").stdout) if t["label"] == LABEL]
        self.assertEqual(len(toks), 1)
        self.assertTrue(toks[0]["initialized"] and toks[0]["user_pin_initialized"])
        self.assertEqual(toks[0]["config"], ["primary"])
        self.assertIn(f"token={LABEL}", toks[0]["uri"])
        text = e.cli("token", "list").stdout.decode()
        self.assertIn(f'token "{LABEL}"', text)
        self.assertIn("[token primary]", text)

        # Initialized but empty: may be initialized again (same SO PIN).
        e.cli("token", "init", "--token", "primary", "--label", LABEL, "--so-pin-file", so,
              "--pin-file", e.path("primary.pin"))
        e.cli("key", "generate", "--domain", "example.com", "--alg", "ed25519-sha256")

        # Holding keys: refused without --wipe, and the key is still there.
        cp = e.cli("token", "init", "--token", "primary", "--label", LABEL, "--so-pin-file", so,
                   "--pin-file", e.path("primary.pin"), check=None)
        failed_cleanly(self, cp, EX_DATAERR, "--wipe", LABEL)
        self.assertEqual(len(keys_json(e)), 1)

        # A wrong SO PIN cannot wipe it.
        bad_so = e.pin("bad.so.pin", "11111111")
        cp = e.cli("token", "init", "--token", "primary", "--label", LABEL, "--so-pin-file",
                   bad_so, "--pin-file", e.path("primary.pin"), "--wipe", check=None)
        failed_cleanly(self, cp, EX_NOPERM, "CKR_PIN_INCORRECT")
        self.assertEqual(len(keys_json(e)), 1)

        e.cli("token", "init", "--token", "primary", "--label", LABEL, "--so-pin-file", so,
              "--pin-file", e.path("primary.pin"), "--wipe")
        self.assertEqual(keys_json(e), [])

    def test_init_refusals(self):
        e = self.e
        config(e)
        so = e.pin("so.pin", "87654321")
        cp = e.cli("token", "init", "--token", "nosuch", "--label", "x", "--so-pin-file", so,
                   check=None)
        failed_cleanly(self, cp, EX_CONFIG, "[token nosuch]", e.conf)
        loose = e.write("loose.pin", "87654321\n", 0o644)
        cp = e.cli("token", "init", "--token", "primary", "--label", LABEL, "--so-pin-file", loose,
                   check=None)
        failed_cleanly(self, cp, EX_CONFIG, loose, "chmod")
        cp = e.cli("token", "init", "--token", "primary", "--label", "x" * 33, "--so-pin-file", so,
                   check=None)
        failed_cleanly(self, cp, EX_DATAERR, "32")
        cp = e.cli("token", "init", "--token", "primary", check=None)
        failed_cleanly(self, cp, EX_USAGE, "--label")
        # The label in uri= does not match: a warning says what to set.
        cp = e.cli("token", "init", "--token", "primary", "--label", "other-label",
                   "--so-pin-file", so)
        self.assertIn(b"uri = pkcs11:token=other-label", cp.stderr)


class KeyGenerate(EnvTestCase):

    def test_generated_keys_are_locked_in_the_token(self):
        e = self.e
        setup_token(e)
        cp = e.cli("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256", "--activate")
        rsa_sel = selector_prefix() + "-rsa"
        self.assertIn(f"{rsa_sel}._domainkey.example.com IN TXT \"v=DKIM1; k=rsa; p=".encode(), cp.stdout)
        e.cli("key", "generate", "--domain", "example.com", "--alg", "ed25519-sha256")
        # Another RSA key: the selector gets a letter after the date.
        cp = e.cli("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256",
                   "--bits", "3072", "--json")
        doc = json.loads(cp.stdout)
        self.assertEqual(doc["key"]["selector"], selector_prefix() + "b-rsa")
        self.assertEqual(doc["key"]["bits"], 3072)
        self.assertEqual(doc["dns"]["name"], selector_prefix() + "b-rsa._domainkey.example.com")

        keys = {k["selector"]: k for k in keys_json(e)}
        self.assertEqual(set(keys), {rsa_sel, selector_prefix() + "-ed25519", selector_prefix() + "b-rsa"})
        k = keys[rsa_sel]
        self.assertEqual((k["domain"], k["alg"], k["slot"], k["state"], k["token"], k["bits"]),
                         ("example.com", "rsa-sha256", "primary", "active", "primary", 2048))
        self.assertRegex(k["key_id"], r"^[0-9a-f]{16}$")
        self.assertRegex(k["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(keys[selector_prefix() + "-ed25519"]["state"], "pending")
        self.assertNotIn("bits", keys[selector_prefix() + "-ed25519"])
        self.assertTrue(all(k["usable"] for k in keys.values()))

        # A second active RSA key is refused, with rotation suggested.
        cp = e.cli("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256",
                   "--activate", check=None)
        failed_cleanly(self, cp, EX_DATAERR, "already has an active", "rotate")

        # The independent reader: exact attributes, and no private value comes out.
        objs = dump(e)
        by_id = {}
        for o in objs:
            if o["class"] in ("private", "public"):
                by_id.setdefault(o["ID"], {})[o["class"]] = o
        self.assertEqual({bytes.fromhex(i).hex() for i in by_id}, {k["key_id"] for k in keys.values()})
        for kid, pair in by_id.items():
            key = next(k for k in keys.values() if k["key_id"] == kid)
            label = f"{key['selector']}._domainkey.example.com".encode().hex()
            priv, pub = pair["private"], pair["public"]
            with self.subTest(key=key["selector"]):
                for name, want in (("TOKEN", True), ("PRIVATE", True), ("SENSITIVE", True),
                                   ("EXTRACTABLE", False), ("SIGN", True), ("DECRYPT", False),
                                   ("UNWRAP", False), ("DERIVE", False), ("ALWAYS_SENSITIVE", True),
                                   ("NEVER_EXTRACTABLE", True), ("LOCAL", True)):
                    self.assertEqual(priv[name], want, f"private {name}")
                for name, want in (("TOKEN", True), ("PRIVATE", False), ("VERIFY", True),
                                   ("ENCRYPT", False), ("WRAP", False)):
                    self.assertEqual(pub[name], want, f"public {name}")
                self.assertEqual(len(bytes.fromhex(kid)), 8)
                self.assertEqual(priv["LABEL"], label)
                self.assertEqual(pub["LABEL"], label)
                if key["alg"] == "rsa-sha256":
                    self.assertEqual(priv["ALLOWED_MECHANISMS"], sorted([CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS]))
                    self.assertEqual(pub["PUBLIC_EXPONENT"], "010001")
                    self.assertEqual(priv["read_PRIVATE_EXPONENT"]["rv"], CKR_ATTRIBUTE_SENSITIVE)
                    self.assertEqual(priv["read_PRIME_1"]["rv"], CKR_ATTRIBUTE_SENSITIVE)
                else:
                    self.assertEqual(priv["ALLOWED_MECHANISMS"], [CKM_EDDSA])
                    self.assertEqual(pub["EC_PARAMS"], "06032b6570")
                    self.assertEqual(priv["read_VALUE"]["rv"], CKR_ATTRIBUTE_SENSITIVE)
                for r in ("read_VALUE", "read_PRIVATE_EXPONENT", "read_PRIME_1"):
                    self.assertFalse(priv[r]["got_value"], r)
        data = [o for o in objs if o["class"] == "data"]
        self.assertEqual(len(data), 3)
        for d in data:
            self.assertEqual(bytes.fromhex(d["APPLICATION"]), b"dkimkeep")
            self.assertTrue(d["PRIVATE"] and d["TOKEN"])
            self.assertIn(bytes.fromhex(d["LABEL"]).decode(), {k["key_id"] for k in keys.values()})
            self.assertTrue(d["VALUE"].startswith("v=1\ndomain=example.com\nselector="), d["VALUE"])

        # pkcs11-tool sees the same: sign-only, sensitive, never extractable, mechanisms set.
        listing = pkcs11_tool(e, "--list-objects").stdout.decode()
        blocks = re.split(r"\n(?=\S)", listing)
        privs = [b for b in blocks if b.startswith("Private Key Object")]
        self.assertEqual(len(privs), 3, listing)
        for b in privs:
            self.assertRegex(b, r"Usage:\s+sign\n")
            self.assertRegex(b, r"Access:\s+sensitive, always sensitive, never extractable, local")
            self.assertRegex(b, r"Allowed mechanisms: (RSA-PKCS,SHA256-RSA-PKCS|EDDSA)(\n|$)")
        # Without login nothing private is visible: keys and metadata are private objects.
        public_only = pkcs11_tool(e, "--list-objects", login=False).stdout.decode()
        self.assertNotIn("Private Key Object", public_only)
        self.assertNotIn("Data object", public_only)
        # And pkcs11-tool cannot read a private key out (it does not even try in 0.23).
        out = e.path("priv.der")
        pkcs11_tool(e, "--read-object", "--type", "privkey", "--id", k["key_id"], "-o", out, check=None)
        self.assertTrue(not os.path.exists(out) or os.path.getsize(out) == 0)

    def test_dns_publishes_the_token_public_key(self):
        e = self.e
        setup_token(e, domains=("example.com", "example.org"))
        e.cli("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256")
        e.cli("key", "generate", "--domain", "example.com", "--alg", "ed25519-sha256")
        keys = {k["alg"]: k for k in keys_json(e)}
        recs = {r["alg"]: r for r in dns_json(e)}
        self.assertEqual(set(recs), {"rsa-sha256", "ed25519-sha256"})
        for alg, r in recs.items():
            self.assertEqual(r["type"], "TXT")
            self.assertEqual(r["state"], "pending")
            self.assertEqual(r["name"], f"{keys[alg]['selector']}._domainkey.example.com")

        rsa = recs["rsa-sha256"]
        self.assertTrue(rsa["value"].startswith("v=DKIM1; k=rsa; p="))
        spki = p_value(rsa["value"])
        # p= is a DER SubjectPublicKeyInfo that OpenSSL parses as a 2048-bit RSA key.
        text = openssl(e, "pkey", "-pubin", "-inform", "DER", "-noout", "-text", input=spki).stdout
        self.assertIn(b"Public-Key: (2048 bit)", text)
        tool_der = e.path("rsa-pub.der")
        pkcs11_tool(e, "--read-object", "--type", "pubkey", "--id", keys["rsa-sha256"]["key_id"],
                    "-o", tool_der, login=False)
        self.assertEqual(read(tool_der), spki)

        ed = recs["ed25519-sha256"]
        self.assertTrue(ed["value"].startswith("v=DKIM1; k=ed25519; p="))
        raw = p_value(ed["value"])
        self.assertEqual(len(raw), 32)
        tool_pem = e.path("ed-pub.pem")
        pkcs11_tool(e, "--read-object", "--type", "pubkey", "--id", keys["ed25519-sha256"]["key_id"],
                    "-o", tool_pem, login=False)
        der = openssl(e, "pkey", "-pubin", "-in", tool_pem, "-outform", "DER").stdout
        self.assertEqual(der[-32:], raw)
        point = next(o["EC_POINT"] for o in dump(e) if o["class"] == "public" and o["EC_POINT"])
        self.assertEqual(bytes.fromhex(point), b"\x04\x20" + raw)

        # Zone-file lines: quoted strings of at most 255 bytes that join to the value.
        lines = e.cli("key", "dns").stdout.decode().splitlines()
        self.assertEqual(len(lines), 2)
        for line in lines:
            m = re.fullmatch(r'(\S+) IN TXT ((?:"[^"]*" ?)+)', line)
            self.assertIsNotNone(m, line)
            parts = re.findall(r'"([^"]*)"', m.group(2))
            self.assertTrue(all(len(p) <= 255 for p in parts), line)
            rec = next(r for r in recs.values() if r["name"] == m.group(1))
            self.assertEqual("".join(parts), rec["value"])
            if rec["alg"] == "rsa-sha256":
                self.assertGreater(len(parts), 1)
        # --domain: only that domain's records.
        self.assertEqual(dns_json(e, "--domain", "example.org"), [])
        self.assertEqual(len(dns_json(e, "--domain", "EXAMPLE.com")), 2)

    def test_newest_metadata_wins_and_the_older_is_removed(self):
        """A crash between writing new metadata and removing the old leaves two
        records for one key; the listing keeps the newer and removes the other.
        The newer one here revokes the key, so key dns publishes p=."""
        e = self.e
        setup_token(e)
        e.cli("key", "generate", "--domain", "example.com", "--alg", "ed25519-sha256")
        k = keys_json(e)[0]
        created = k["created"]
        newer = (f"v=1\ndomain=example.com\nselector={k['selector']}\nalg=ed25519-sha256\n"
                 f"slot=primary\nstate=revoked\ncreated={created}\nchanged=2099-01-01T00:00:00Z\n"
                 f"rev=1\nfuture_field=ignored\n")
        path = e.write("meta.txt", newer)
        pkcs11_tool(e, "--write-object", path, "--type", "data", "--label", k["key_id"],
                    "--application-label", "dkimkeep", "--private")
        data = [o for o in dump(e) if o["class"] == "data"]
        self.assertEqual(len(data), 2)
        k2 = keys_json(e)
        self.assertEqual(len(k2), 1)
        self.assertEqual(k2[0]["state"], "revoked")
        self.assertEqual(k2[0]["changed"], "2099-01-01T00:00:00Z")
        data = [o for o in dump(e) if o["class"] == "data"]
        self.assertEqual(len(data), 1)
        self.assertIn("state=revoked", data[0]["VALUE"])
        rec = dns_json(e)[0]
        self.assertEqual(rec["state"], "revoked")
        self.assertEqual(rec["value"], "v=DKIM1; k=ed25519; p=")
        self.assertIn(b'IN TXT "v=DKIM1; k=ed25519; p="', e.cli("key", "dns").stdout)

    def test_generate_refusals(self):
        e = self.e
        setup_token(e)
        cases = [
            (["--alg", "rsa-sha256"], EX_USAGE, "--domain"),
            (["--domain", "example.com", "--alg", "rsa-sha1"], EX_USAGE, "RFC 8301"),
            (["--domain", "example.com", "--alg", "rsa-sha256", "--bits", "1024"], EX_USAGE, "2048"),
            (["--domain", "example.com", "--alg", "ed25519-sha256", "--bits", "2048"], EX_USAGE, "--bits"),
            (["--domain", "nosuch.example", "--alg", "rsa-sha256"], EX_CONFIG, "[domain nosuch.example]"),
            (["--domain", "example.com", "--alg", "rsa-sha256", "--slot", "backup"], EX_CONFIG, "backup="),
            (["--domain", "example.com", "--alg", "rsa-sha256", "--slot", "middle"], EX_USAGE, "--slot"),
            (["--domain", "example.com", "--alg", "rsa-sha256", "--selector", "bad selector"],
             EX_DATAERR, "selector"),
            (["--domain", "example.com", "--alg", "rsa-sha256", "--frobnicate"], EX_USAGE, "--frobnicate"),
        ]
        for args, code, needle in cases:
            with self.subTest(args=args):
                failed_cleanly(self, e.cli("key", "generate", *args, check=None), code, needle)
        self.assertEqual(keys_json(e), [], "a refused generation leaves nothing behind")
        e.cli("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256", "--selector", "taken")
        cp = e.cli("key", "generate", "--domain", "example.com", "--alg", "ed25519-sha256",
                   "--selector", "taken", check=None)
        failed_cleanly(self, cp, EX_DATAERR, "taken")
        help_ = e.cli("key", "generate", "--help", conf=False).stdout
        self.assertIn(b"usage: dkimkeep", help_)
        self.assertIn(b"--selector", help_)


class Hygiene(EnvTestCase):
    """Keys that dkimkeepd must never sign with are shown as refused, with why."""

    def write_meta(self, key_id, selector, alg="rsa-sha256"):
        text = (f"v=1\ndomain=example.com\nselector={selector}\nalg={alg}\nslot=primary\n"
                "state=active\ncreated=2026-01-01T00:00:00Z\nchanged=2026-01-01T00:00:00Z\n")
        path = self.e.write(f"meta-{key_id}.txt", text)
        pkcs11_tool(self.e, "--write-object", path, "--type", "data", "--label", key_id,
                    "--application-label", "dkimkeep", "--private")

    def test_foreign_and_mismatched_keys_are_refused(self):
        e = self.e
        setup_token(e)
        # A key made by another tool with SoftHSM's defaults: it may decrypt and unwrap.
        pkcs11_tool(e, "--keypairgen", "--key-type", "rsa:2048", "--id", "c0c0c0c0c0c0c0c0",
                    "--label", "foreign", "--usage-sign")
        self.write_meta("c0c0c0c0c0c0c0c0", "foreign")
        # Two good keys; then A's public key is replaced by B's: a pair that does not belong.
        a = json.loads(e.cli("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256",
                             "--selector", "a", "--json").stdout)["key"]["key_id"]
        b = json.loads(e.cli("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256",
                             "--selector", "b", "--json").stdout)["key"]["key_id"]
        der = e.path("b.der")
        pkcs11_tool(e, "--read-object", "--type", "pubkey", "--id", b, "-o", der)
        pkcs11_tool(e, "--delete-object", "--type", "pubkey", "--id", a)
        pkcs11_tool(e, "--write-object", der, "--type", "pubkey", "--id", a, "--label", "swapped")

        keys = {k["selector"]: k for k in keys_json(e)}
        self.assertEqual(set(keys), {"foreign", "a", "b"})
        self.assertTrue(keys["b"]["usable"])
        self.assertFalse(keys["foreign"]["usable"])
        self.assertIn("CKA_DECRYPT", keys["foreign"]["problem"])
        self.assertIn("foreign._domainkey.example.com", keys["foreign"]["problem"])
        self.assertFalse(keys["a"]["usable"])
        self.assertIn("does not verify", keys["a"]["problem"])
        self.assertIn(a, keys["a"]["problem"])
        cp = e.cli("key", "list")
        table = cp.stdout.decode()
        self.assertRegex(table, r"\ba .*REFUSED\n")
        self.assertRegex(table, r"\bforeign .*REFUSED\n")
        self.assertRegex(table, r"\bb .*ok\n")
        self.assertIn(b"does not verify", cp.stderr)


class KeyImport(EnvTestCase):

    def test_import_pkcs1_pkcs8_and_ed25519(self):
        e = self.e
        setup_token(e)
        pems = {
            "pkcs1": (e.path("rsa1.pem"), ["genrsa", "-traditional", "-out", e.path("rsa1.pem"), "2048"]),
            "pkcs8": (e.path("rsa8.pem"), ["genpkey", "-algorithm", "RSA", "-pkeyopt",
                                           "rsa_keygen_bits:3072", "-out", e.path("rsa8.pem")]),
            "ed": (e.path("ed.pem"), ["genpkey", "-algorithm", "ED25519", "-out", e.path("ed.pem")]),
        }
        for sel, (path, argv) in pems.items():
            openssl(e, *argv)
            first = read(path).split(b"\n")[0]
            self.assertIn(b"RSA PRIVATE KEY" if sel == "pkcs1" else b"BEGIN PRIVATE KEY", first)
            cp = e.cli("key", "import", "--domain", "example.com", "--selector", sel, "--pem", path)
            self.assertIn(f"shred -u {path}".encode(), cp.stdout)
            self.assertIn(b"destroy", cp.stdout)
        recs = {r["selector"]: r for r in dns_json(e)}
        for sel, (path, _) in pems.items():
            with self.subTest(pem=sel):
                want = pem_public_der(e, path)
                got = p_value(recs[sel]["value"])
                if sel == "ed":
                    self.assertEqual(recs[sel]["alg"], "ed25519-sha256")
                    self.assertEqual(got, want[-32:])
                else:
                    self.assertEqual(recs[sel]["alg"], "rsa-sha256")
                    self.assertEqual(got, want)
        keys = {k["selector"]: k for k in keys_json(e)}
        self.assertEqual(keys["pkcs8"]["bits"], 3072)
        self.assertTrue(all(k["usable"] and k["state"] == "pending" for k in keys.values()))
        for o in dump(e):
            if o["class"] != "private":
                continue
            with self.subTest(id=o["ID"]):
                self.assertTrue(o["SENSITIVE"] and o["PRIVATE"] and o["TOKEN"] and o["SIGN"])
                self.assertFalse(o["EXTRACTABLE"] or o["DECRYPT"] or o["UNWRAP"] or o["DERIVE"])
                # Imported: it was outside the token once, and the token says so.
                self.assertFalse(o["ALWAYS_SENSITIVE"])
                self.assertFalse(o["NEVER_EXTRACTABLE"])
                for r in ("read_VALUE", "read_PRIVATE_EXPONENT"):
                    self.assertFalse(o[r]["got_value"])
                    if o[r]["rv"] != 0x12:  # CKR_ATTRIBUTE_TYPE_INVALID for the other key type
                        self.assertEqual(o[r]["rv"], CKR_ATTRIBUTE_SENSITIVE)

    def test_import_refusals(self):
        e = self.e
        setup_token(e)
        enc = e.path("enc.pem")
        openssl(e, "genpkey", "-algorithm", "ED25519", "-aes256", "-pass", "pass:secret", "-out", enc)
        small = e.path("rsa512.pem")
        openssl(e, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512", "-out", small)
        ec = e.path("ec.pem")
        openssl(e, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec)
        junk = e.write("junk.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        cases = [(enc, EX_DATAERR, "encrypted"), (small, EX_DATAERR, "512 bits"),
                 (ec, EX_DATAERR, "EC"), (junk, EX_DATAERR, junk),
                 (e.path("missing.pem"), EX_IOERR, "missing.pem")]
        for path, code, needle in cases:
            with self.subTest(pem=os.path.basename(path)):
                cp = e.cli("key", "import", "--domain", "example.com", "--selector", "x", "--pem",
                           path, check=None)
                failed_cleanly(self, cp, code, needle)
        self.assertEqual(keys_json(e), [])
        # 1024..2047 bits: imported, with a warning.
        weak = e.path("rsa1024.pem")
        openssl(e, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", weak)
        cp = e.cli("key", "import", "--domain", "example.com", "--selector", "weak", "--pem", weak)
        self.assertIn(b"1024 bits", cp.stderr)
        self.assertIn(b"warning", cp.stderr)
        k = keys_json(e)
        self.assertEqual((k[0]["bits"], k[0]["usable"], k[0]["weak"]), (1024, True, True))
        self.assertRegex(e.cli("key", "list").stdout.decode(), r"weak\n")
        # The same key again, or a taken selector: refused.
        cp = e.cli("key", "import", "--domain", "example.com", "--selector", "again", "--pem", weak,
                   check=None)
        failed_cleanly(self, cp, EX_DATAERR, "already holds this key")
        cp = e.cli("key", "import", "--domain", "example.com", "--selector", "weak", "--pem", small,
                   check=None)
        self.assertEqual(cp.returncode, EX_DATAERR)
        cp = e.cli("key", "import", "--domain", "example.com", "--pem", weak, check=None)
        failed_cleanly(self, cp, EX_USAGE, "--selector")
        self.assertEqual(len(keys_json(e)), 1)


class Failures(EnvTestCase):

    def test_wrong_pin_is_tried_exactly_once(self):
        e = self.e
        setup_token(e)
        e.cli("key", "generate", "--domain", "example.com", "--alg", "ed25519-sha256")
        log = e.path("spy.log")
        bad = e.pin("bad.pin", "9999")
        e.write_config(f"[token primary]\nmodule = {SPY}\nuri = pkcs11:token={LABEL}\n"
                       f"pin_file = {bad}\n\n[domain example.com]\nalgorithms = rsa-sha256\nprimary = primary\n")
        spy_env = {"PKCS11SPY": SOFTHSM, "PKCS11SPY_OUTPUT": log}
        for args in (("key", "list"), ("key", "dns"),
                     ("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256")):
            with self.subTest(args=args):
                if os.path.exists(log):
                    os.unlink(log)
                cp = e.cli(*args, check=None, env=spy_env)
                err = failed_cleanly(self, cp, EX_NOPERM, "CKR_PIN_INCORRECT", bad, LABEL, "retr")
                self.assertNotIn("9999", err)
                calls = read(log, "r")
                self.assertEqual(len(re.findall(r"\bC_Login\b", calls)), 1, "one login attempt only")
        # The right PIN through the same spy: one login, and it works.
        e.pin("bad.pin", PIN)
        os.unlink(log)
        self.assertEqual(len(json.loads(e.cli("key", "list", "--json", env=spy_env).stdout)), 1)
        self.assertEqual(len(re.findall(r"\bC_Login\b", read(log, "r"))), 1)

    def test_bad_config_is_named_with_file_and_line(self):
        e = self.e
        e.write_config(e.token_section("primary", LABEL)
                       + "[domain example.com]\nalgorithms = rsa-sha256\nprimary = primary\n"
                       "frobnicate = yes\n")
        for args in (("key", "list"), ("key", "dns"), ("token", "list"),
                     ("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256")):
            with self.subTest(args=args):
                cp = e.cli(*args, check=None)
                err = failed_cleanly(self, cp, EX_CONFIG, e.conf)
                self.assertRegex(err, re.escape(e.conf) + r":9\b")
        cp = e.cli("key", "list", check=None, conf=False, env={"DKIMKEEP_CONF": e.path("nope.conf")})
        failed_cleanly(self, cp, EX_CONFIG, "nope.conf")

    def test_world_readable_pin_file(self):
        e = self.e
        setup_token(e)
        os.chmod(e.path("primary.pin"), 0o644)
        cp = e.cli("key", "list", check=None)
        failed_cleanly(self, cp, EX_CONFIG, e.path("primary.pin"), "chmod")

    def test_token_not_found(self):
        e = self.e
        setup_token(e)
        config(e, label="no-such-token")
        cp = e.cli("key", "list", check=None)
        failed_cleanly(self, cp, EX_UNAVAILABLE, "no-such-token", "token list", e.conf)
        cp = e.cli("key", "list", check=None, env={"SOFTHSM2_CONF": e.path("nope")})
        self.assertNotEqual(cp.returncode, 0)
        self.assertEqual(cp.stdout, b"")

    def test_usage(self):
        e = self.e
        config(e)
        for args, needle in ((("key",), b"usage"), (("key", "frob"), b"frob"),
                             (("token", "list", "extra"), b"extra"), (("token",), b"usage")):
            with self.subTest(args=args):
                cp = e.cli(*args, check=None)
                self.assertEqual(cp.returncode, EX_USAGE)
                self.assertEqual(cp.stdout, b"")
                self.assertIn(needle, cp.stderr)
        for args in (("token", "init", "-h"), ("token", "list", "--help"), ("key", "import", "--help"),
                     ("key", "list", "-h"), ("key", "dns", "--help"), ("key", "--help")):
            with self.subTest(args=args):
                cp = e.cli(*args)
                self.assertIn(b"usage: dkimkeep", cp.stdout)
                self.assertIn(b"Exit codes" if len(args) > 2 else b"dkimkeep", cp.stdout)
        # -c after the subcommand overrides the global one.
        cp = e.cli("key", "list", "-c", e.path("nope.conf"), check=None)
        failed_cleanly(self, cp, EX_CONFIG, "nope.conf")


class Interop(EnvTestCase):

    def test_openssl_engine_signs_with_our_rsa_key(self):
        """OpenSSL through libp11's engine signs with a key dkimkeep generated, and
        the signature verifies with the public key that key dns publishes.  Only
        RSA: libp11 0.4.12 cannot enumerate a token that holds Ed25519 keys."""
        e = self.e
        engines = glob.glob("/usr/lib/*/engines-3/pkcs11.so") + glob.glob("/usr/lib/engines-3/pkcs11.so")
        self.assertTrue(engines, "libengine-pkcs11-openssl is not installed (ci/install-deps)")
        setup_token(e)
        doc = json.loads(e.cli("key", "generate", "--domain", "example.com", "--alg", "rsa-sha256",
                               "--activate", "--json").stdout)
        uri = doc["key"]["uri"]
        self.assertIn(f"token={LABEL}", uri)
        self.assertIn("type=private", uri)
        cnf = e.write("openssl.cnf", (
            "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n"
            "[engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n"
            f"dynamic_path = {engines[0]}\nMODULE_PATH = {SOFTHSM}\ninit = 0\n"))
        pub = e.write("pub.der", p_value(doc["dns"]["value"]))
        pem = e.path("pub.pem")
        openssl(e, "pkey", "-pubin", "-inform", "DER", "-in", pub, "-out", pem)
        data = e.write("data.txt", "From: joe@example.com\r\nSubject: interop\r\n")
        sig = e.path("sig.bin")
        e.run(["openssl", "dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine",
               "-sign", uri + "?pin-value=" + PIN, "-out", sig, data],
              env={"OPENSSL_CONF": cnf}, check=0)
        self.assertEqual(os.path.getsize(sig), 256)
        cp = openssl(e, "dgst", "-sha256", "-verify", pem, "-signature", sig, data)
        self.assertIn(b"Verified OK", cp.stdout)
        # And a tampered message does not verify: the check above means something.
        bad = e.write("bad.txt", "From: eve@example.com\r\nSubject: interop\r\n")
        cp = openssl(e, "dgst", "-sha256", "-verify", pem, "-signature", sig, bad, check=None)
        self.assertNotEqual(cp.returncode, 0)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--p11-dump":
        print(json.dumps(p11_dump(sys.argv[2], sys.argv[3], sys.argv[4])))
        sys.exit(0)
    unittest.main(verbosity=2)
