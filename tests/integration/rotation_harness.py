"""A real DNS server for the rotation tests, and signing load judged against it.

Knot(env, records) starts knotd on a free loopback port with its own rundir,
storage and log in the test's temp dir, one zone (example.com) holding the
given TXT records, and a TSIG key (hmac-sha256) allowed to update the zone.
dkimkeep's RFC 2136 updates go to it; lookups (dkimkeep's and the tests')
are answered by it.  Load signs without pause and verifies every signature
with dkimpy against the record Knot serves at that moment.
"""
import base64
import json
import os
import socket
import subprocess
import threading

import dkim
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update

from harness import prog, wait_for
from daemon_harness import selectors_of  # noqa: F401 (tests import it from here)

ZONE = "example.com"


def free_port():
    """A loopback port free for both UDP and TCP."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise AssertionError("no free loopback port")


def quoted(value):
    """A TXT value as zone-file strings of at most 255 bytes."""
    parts = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + p.replace('"', '\\"') + '"' for p in parts)


class Knot:
    def __init__(self, env, records=(), extra_zone=""):
        self.e = env
        self.port = free_port()
        self.dir = env.path("knot")
        for sub in ("run", "db", "zones"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.key_name = "dkimkeep."
        self.secret = base64.b64encode(os.urandom(32)).decode()
        self.tsig_file = env.write("tsig.key", f"{self.key_name} hmac-sha256 {self.secret}\n", 0o600)
        self.log = os.path.join(self.dir, "knot.log")
        conf = os.path.join(self.dir, "knot.conf")
        with open(conf, "w") as f:
            f.write(f"""server:
    rundir: "{self.dir}/run"
    listen: 127.0.0.1@{self.port}
database:
    storage: "{self.dir}/db"
key:
  - id: {self.key_name}
    algorithm: hmac-sha256
    secret: {self.secret}
acl:
  - id: update
    key: {self.key_name}
    action: update
template:
  - id: default
    storage: "{self.dir}/zones"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: {ZONE}
    acl: update
log:
  - target: "{self.log}"
    any: info
""")
        with open(os.path.join(self.dir, "zones", f"{ZONE}.zone"), "w") as f:
            f.write(f"$TTL 60\n@ SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 60\n"
                    f"@ NS ns1.{ZONE}.\nns1 A 127.0.0.1\n")
            for r in records:
                if r.get("state") == "revoked":
                    continue
                f.write(f"{r['name']}. 60 IN TXT {quoted(r['value'])}\n")
            f.write(extra_zone)
        self.proc = subprocess.Popen(["knotd", "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env.procs.append(self.proc)
        wait_for(self._up, "knotd answers", timeout=30)
        self.server = f"127.0.0.1:{self.port}"

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"knotd exited {self.proc.returncode}: {open(self.log).read()}")
        try:
            return self._query(ZONE, "SOA").rcode() == dns.rcode.NOERROR
        except Exception:
            return False

    def _query(self, name, rtype):
        q = dns.message.make_query(name, rtype)
        r = dns.query.udp(q, "127.0.0.1", port=self.port, timeout=2)
        if r.flags & dns.flags.TC:
            r = dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=2)
        return r

    def txt_ttl(self, name):
        """The TTL of the TXT RRset at name, or None."""
        for rrset in self._query(name, "TXT").answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return rrset.ttl
        return None

    def txt(self, name):
        """The TXT values served at name (strings joined), following one CNAME."""
        r = self._query(name, "TXT")
        out = []
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                out += [b"".join(rd.strings).decode() for rd in rrset]
        return out

    def update(self, name, value=None, cname=None):
        """Replace name's TXT (and CNAME) with value (a list: several records), or with a
        CNAME, or delete them."""
        keyring = dns.tsigkeyring.from_text({self.key_name: self.secret})
        u = dns.update.UpdateMessage(ZONE, keyring=keyring, keyalgorithm="hmac-sha256")
        rel = name[:-len(ZONE) - 1] if name.endswith("." + ZONE) else name
        u.delete(rel, "TXT")
        u.delete(rel, "CNAME")
        for v in ([] if value is None else [value] if isinstance(value, str) else value):
            parts = [v[i:i + 255] for i in range(0, len(v), 255)] or [""]
            u.add(rel, 60, "TXT", " ".join('"' + p + '"' for p in parts))
        if cname is not None:
            u.add(rel, 60, "CNAME", cname + ".")
        r = dns.query.tcp(u, "127.0.0.1", port=self.port, timeout=5)
        if r.rcode() != dns.rcode.NOERROR:
            raise AssertionError(f"update of {name} refused: {dns.rcode.to_text(r.rcode())}")


def rotation_config(env, knot, domain_keys, dns_extra="", notify=True):
    """Add rotation keys to [domain example.com] and a [dns] section to the World's config."""
    with open(env.conf) as f:
        text = f.read()
    text = text.replace(f"[domain {ZONE}]\n", f"[domain {ZONE}]\n{domain_keys}", 1)
    text += f"[dns]\nserver = {knot.server}\nresolver = {knot.server}\ntsig_key_file = {knot.tsig_file}\n"
    if notify:
        log = env.path("notify.log")
        script = env.write("notify.sh", f"#!/bin/sh\nprintf '%s|%s|%s\\n' \"$1\" \"$2\" \"$3\" >> {log}\n",
                           0o755)
        text += f"notify_command = {script}\n"
    text += dns_extra
    env.write_config(text)


def start_daemon(w, conf=None, log="dkimkeepd.log", **kw):
    """Start dkimkeepd for World w with its log in a file (a pipe nobody reads fills up),
    and wait until it listens."""
    e = w.e
    f = open(e.path(log), "ab")
    w.daemon = subprocess.Popen([prog("dkimkeepd"), "-c", conf or e.conf, "-f"], env=e.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, **kw)
    f.close()
    e.procs.append(w.daemon)
    w.wait_ready()
    return w.daemon


def daemon_log(env, log="dkimkeepd.log"):
    with open(env.path(log), "rb") as f:
        return f.read().decode(errors="replace")


def notifications(env):
    p = env.path("notify.log")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [line.rstrip("\n").split("|", 2) for line in f if line.strip()]


def keys(env, domain=ZONE, what="list"):
    """key list --json (or key dns --json).  A key a daemon destroys between the listing and
    the reading of its objects is skipped by dkimkeep (not an error), so this never retries."""
    cp = env.cli("key", what, "--domain", domain, "--json", check=None)
    if cp.returncode == 0:
        return json.loads(cp.stdout)
    raise AssertionError(f"key {what}: exit {cp.returncode}: {cp.stderr.decode(errors='replace')}")


def signing_keys(env):
    """{(alg, slot): selector} of the keys that sign: the newest active/standby (as dkimkeepd picks)."""
    best = {}
    for k in keys(env):
        if k["state"] in ("active", "standby"):
            cur = best.get((k["alg"], k["slot"]))
            if cur is None or k["changed"] > cur["changed"]:
                best[(k["alg"], k["slot"])] = k
    return {a: k["selector"] for a, k in best.items()}


def verify_live(knot, signed):
    """Every DKIM-Signature verifies (dkimpy) with the records Knot serves now; '' or why not."""
    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        vals = knot.txt(name.rstrip("."))
        return vals[0].encode() if vals else None

    n = len(selectors_of(signed))
    if n == 0:
        return "no DKIM-Signature"
    for i in range(n):
        if not dkim.DKIM(signed).verify(idx=i, dnsfunc=dnsfunc):
            return f"signature {i} ({selectors_of(signed)[i]}) does not verify"
    return ""


MSG = (b"From: Joe <joe@example.com>\r\nTo: ann@example.net\r\nSubject: rotation\r\n"
       b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <r1@example.com>\r\n\r\n"
       b"Signed while the keys rotate.\r\n")


class Load:
    """dkimkeep sign in a loop from a few threads against one socket; each result is
    verified at once against the records Knot serves."""

    def __init__(self, env, knot, socket_path, threads=2):
        self.e, self.knot, self.socket = env, knot, socket_path
        self.results = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self):
        argv = [prog("dkimkeep"), "sign", "--socket", self.socket]
        while not self.stop_ev.is_set():
            cp = subprocess.run(argv, input=MSG, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.e.env, timeout=120)
            ok = cp.returncode == 0
            why = verify_live(self.knot, cp.stdout) if ok else (
                f"exit {cp.returncode}: {cp.stderr.decode(errors='replace')}")
            with self.lock:
                self.results.append({"ok": ok and not why, "why": why,
                                     "selectors": selectors_of(cp.stdout) if ok else []})

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=300)
        return self.results

    def seen(self, selectors):
        with self.lock:
            return any(set(selectors) <= set(r["selectors"]) for r in self.results if r["ok"])

    def failures(self):
        with self.lock:
            return [r for r in self.results if not r["ok"]]
