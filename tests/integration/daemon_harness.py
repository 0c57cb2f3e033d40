"""A running dkimkeepd for integration tests, and a tiny protobuf codec.

World(env) sets up two SoftHSM tokens (primary and backup), a config with
domains and a [client] for this uid, RSA and Ed25519 keys (active on the
primary, standby on the backup), and starts the real dkimkeepd.  The raw
client below speaks the wire protocol by hand (proto/dkimkeep.proto), so
abuse tests can send anything.
"""
import json
import os
import re
import signal
import socket
import struct
import threading
import time

from harness import prog, SOURCE

VERIFY_PY = os.path.join(SOURCE, "tests", "tools", "verify_dkim.py")
VERIFY_PL = os.path.join(SOURCE, "tests", "tools", "verify_maildkim.pl")

# -- protobuf, just enough for dkimkeep.v1 -----------------------------------


def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_field(num, value):
    """Encode one field: int -> varint, bytes/str -> length-delimited."""
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    if isinstance(value, str):
        value = value.encode()
    return _varint(num << 3 | 2) + _varint(len(value)) + value


def pb_decode(data):
    """Decode one message level into {field: [values]} (bytes for LEN, int for varint)."""
    out, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(data, i)
        elif wt == 2:
            n, i = _read_varint(data, i)
            v, i = data[i:i + n], i + n
        elif wt == 1:
            v, i = data[i:i + 8], i + 8
        elif wt == 5:
            v, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        out.setdefault(num, []).append(v)
    return out


def _read_varint(data, i):
    shift = n = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


STATUS = {1: "OK", 2: "BAD_REQUEST", 3: "BAD_MESSAGE", 4: "NOT_AUTHORIZED", 5: "UNKNOWN_DOMAIN",
          6: "NO_KEY", 7: "BUSY", 8: "RATE_LIMITED", 9: "TOKEN_UNAVAILABLE",
          10: "AUDIT_UNAVAILABLE", 11: "INTERNAL"}


def sign_request(rid, header_section, body=b"", domain=None, algs=(), timestamp=0):
    sr = b""
    if domain:
        sr += pb_field(1, domain)
    for a in algs:
        sr += pb_field(3, a)
    if timestamp:
        sr += pb_field(5, timestamp)
    sr += pb_field(8, header_section)
    sr += pb_field(10, body)
    return pb_field(1, rid) + pb_field(2, sr)


def status_request(rid):
    """A Request with an empty StatusRequest (field 3)."""
    return pb_field(1, rid) + pb_field(3, b"")


def selectors_of(signed):
    """The s= of every DKIM-Signature at the top of a signed message."""
    unfolded = signed.replace(b"\r\n\t", b"").replace(b"\n\t", b"").replace(b"\r\n ", b"")
    sels = []
    for line in unfolded.split(b"\n"):
        if not line.startswith(b"DKIM-Signature:"):
            break
        m = re.search(rb"[;\s]s=([A-Za-z0-9._-]+)", line)
        sels.append(m.group(1).decode() if m else "?")
    return sels


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def split_message(msg):
    """(header section, body) of a message as bytes."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = msg.find(sep)
        if i >= 0:
            return msg[:i + len(sep) // 2], msg[i + len(sep):]
    return msg, b""


class RawClient:
    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A blocking connect waits for the listen backlog; a timed one gets EAGAIN.
        self.s.connect(path)
        self.s.settimeout(timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def recv_response(self):
        """Next Response as a dict, or None when the daemon closed the connection."""
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    payload, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return self.decode(payload)
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    @staticmethod
    def decode(payload):
        m = pb_decode(payload)
        r = {"id": m.get(1, [0])[0], "status": STATUS.get(m.get(2, [0])[0], "?"),
             "error": m.get(3, [b""])[0].decode(errors="replace"), "sigs": []}
        for sr in m.get(4, []):
            for sig in pb_decode(sr).get(1, []):
                f = pb_decode(sig)
                r["sigs"].append({"header": f.get(1, [b""])[0].decode(),
                                  "selector": f.get(3, [b""])[0].decode(),
                                  "slot": f.get(4, [b""])[0].decode()})
        return r

    def close(self):
        self.s.close()


class PipelinedLoad:
    """Signing load while something breaks (a kill -9): clients connections, each
    keeping depth requests in flight until stop() or until the daemon closes it.
    request(rid) is the payload of request rid (ids k * 1000000 + 1, + 2, ... on
    connection k).  receipts: the ids of the answers that were OK with signatures;
    check(response), when given, is called on each of those (in a client thread)
    and what it returns other than None is kept in bad.  A connection that fails
    ends its client quietly: a test judges what receipts and bad hold."""

    def __init__(self, path, request, clients, depth, check=None, timeout=30):
        self.path, self.request, self.depth, self.check = path, request, depth, check
        self.timeout = timeout
        self.receipts, self.bad = [], []
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(k * 1000000,))
                        for k in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self, timeout=60):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=timeout)

    def _client(self, base):
        try:
            c = RawClient(self.path, timeout=self.timeout)
        except OSError:
            return
        rid, inflight = base, 0
        try:
            while not self.stopping.is_set():
                while inflight < self.depth:
                    rid += 1
                    c.send(frame(self.request(rid)))
                    inflight += 1
                r = c.recv_response()
                if r is None:
                    return
                inflight -= 1
                if r["status"] == "OK" and r["sigs"]:
                    err = self.check(r) if self.check else None
                    with self.lock:
                        self.receipts.append(r["id"])
                        if err:
                            self.bad.append(err)
        except OSError:
            return
        finally:
            c.close()


# -- a configured world with a running daemon --------------------------------


class World:
    def __init__(self, env, domains=("example.com",), algs=("rsa-sha256", "ed25519-sha256"),
                 backup=True, workers=2, queue=256, extra_daemon="", extra="", client=True,
                 socket_mode="0660"):
        self.e = env
        self.domains = domains
        self.algs = algs
        self.daemon = None
        conf = (f"[daemon]\nsocket = {env.socket}\nsocket_mode = {socket_mode}\nworkers = {workers}\n"
                f"queue = {queue}\n{extra_daemon}\n")
        conf += env.token_section("primary", "dk-primary")
        if backup:
            conf += env.token_section("backup", "dk-backup")
        for d in domains:
            conf += (f"[domain {d}]\nalgorithms = {', '.join(algs)}\nprimary = primary\n"
                     + ("backup = backup\n" if backup else "") + "\n")
        if client:
            conf += (f"[client tests]\nuid = {os.getuid()}\n"
                     f"domains = {', '.join(domains)}, " + ", ".join('*.' + d for d in domains) + "\n\n")
        conf += extra
        env.write_config(conf)
        env.init_token("primary", "dk-primary")
        if backup:
            env.init_token("backup", "dk-backup")
        for d in domains:
            for a in algs:
                env.cli("key", "generate", "--domain", d, "--alg", a, "--activate")
                if backup:
                    env.cli("key", "generate", "--domain", d, "--alg", a, "--slot", "backup")
        self.records = env.path("records.json")
        self.refresh_records()

    def refresh_records(self):
        cp = self.e.cli("key", "dns", "--json")
        with open(self.records, "wb") as f:
            f.write(cp.stdout)
        return json.loads(cp.stdout)

    def start(self, args=(), wait=True, env=None, **popen_kw):
        """Start dkimkeepd -f; popen_kw go to Popen (e.g. preexec_fn for a limit)."""
        self.daemon = self.e.spawn([prog("dkimkeepd"), "-c", self.e.conf, "-f"] + list(args), env=env,
                                   **popen_kw)
        if wait:
            self.wait_ready()
        return self.daemon

    def wait_ready(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.daemon.poll() is not None:
                raise AssertionError(f"dkimkeepd exited {self.daemon.returncode}: "
                                     f"{self.daemon.stderr.read().decode(errors='replace')}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.e.socket)
                return
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        raise AssertionError("dkimkeepd did not start listening")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        self.daemon.send_signal(sig)
        rc = self.daemon.wait(timeout=timeout)
        err = self.daemon.stderr.read().decode(errors="replace")
        return rc, err

    def alive(self):
        return self.daemon is not None and self.daemon.poll() is None

    def sign(self, msg, *args, check=0, **kw):
        return self.e.cli("sign", *args, input=msg, check=check, **kw)

    def verify(self, signed, min_sigs=1):
        """Check a signed message with dkimpy (all algorithms) and Mail::DKIM (RSA)."""
        cp = self.e.run(["/usr/bin/python3", VERIFY_PY, "--records", self.records,
                         "--min", str(min_sigs)], input=signed)
        if cp.returncode != 0:
            raise AssertionError(f"dkimpy: {cp.stdout.decode()}{cp.stderr.decode()}")
        if b"a=rsa-sha256" in signed.replace(b"\r\n\t", b"").replace(b"\n\t", b""):
            cp = self.e.run(["/usr/bin/perl", VERIFY_PL, self.records], input=signed)
            if cp.returncode != 0:
                raise AssertionError(f"Mail::DKIM: {cp.stdout.decode()}{cp.stderr.decode()}")


# -- checking many answers without a process per message ---------------------


class Dkimpy:
    """dkimpy in this process, its DNS answered from `dkimkeep key dns --json`
    records: for checking hundreds of raw-protocol answers (World.verify starts
    two verifier processes per message)."""

    def __init__(self, records_path):
        import dkim
        self.dkim = dkim
        with open(records_path) as f:
            recs = json.load(f)
        self.table = {}
        for r in recs:
            self.table.setdefault(r["name"].rstrip(".").lower(), []).append(r["value"])

    def _dns(self, name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        vals = self.table.get(name.rstrip(".").lower())
        return vals[0].encode() if vals else None

    def check(self, message, response):
        """The response's signatures on top of message: None when every one
        verifies, else a line saying what failed."""
        if response is None:
            return "no answer (connection closed)"
        if response["status"] != "OK" or not response["sigs"]:
            return f'{response["status"]}: {response["error"]}'
        signed = b"".join(s["header"].encode() + b"\r\n" for s in response["sigs"]) + message
        for i in range(len(response["sigs"])):
            if not self.dkim.DKIM(signed).verify(idx=i, dnsfunc=self._dns):
                return f"dkimpy: signature {i} ({response['sigs'][i]['selector']}) does not verify"
        return None


def open_fds(pid):
    """How many descriptors process pid has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def nofile_limits(pid):
    """(soft, hard) RLIMIT_NOFILE of process pid, from /proc/pid/limits."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no Max open files line")
