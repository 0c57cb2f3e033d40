"""Key rings under failure: a primary token that dies or misbehaves while
clients sign without pause, the move back when it recovers, both tokens down,
a refused PIN at start, key hygiene at load, and the standby drill.

Faults come from SoftHSM itself (the primary token's directory removed) and
from tests/p11fault, a PKCS#11 module that forwards to SoftHSM and fails,
delays or hangs calls as its control file says.  Every signature that counts
is judged by dkimpy and Mail::DKIM (World.verify), never by dkimkeep alone.
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (EnvTestCase, prog, p11fault_path, DATA, SOFTHSM, EX_OK, EX_UNAVAILABLE,
                     EX_NOPERM, wait_for)
from daemon_harness import World, RawClient, frame, selectors_of, sign_request, split_message

MSG = open(os.path.join(DATA, "messages", "01-plain-crlf.eml"), "rb").read()
# Checks of down tokens every second; a C_Sign slower than a second fails over.
RING_DAEMON = "health_interval = 1s\nsign_timeout_ms = {sign_timeout_ms}\n"


class RingWorld(World):
    """World with short health checks, the daemon's log in a file (read while it runs),
    and with fault=True the tokens reached through p11fault in front of SoftHSM."""

    def __init__(self, env, fault=False, extra_daemon="", sign_timeout_ms=1000, **kw):
        super().__init__(env, extra_daemon=RING_DAEMON.format(sign_timeout_ms=sign_timeout_ms)
                         + extra_daemon, **kw)
        self.control = env.path("p11fault.control")
        self.stats_path = env.path("p11fault.stats")
        self.logfile = env.path("dkimkeepd.log")
        self.log_f = None
        if fault:
            with open(env.conf) as f:
                text = f.read()
            module = f"module = {SOFTHSM}\n"
            self.e_assert(text.count(module) == 2, "two [token] sections using SoftHSM")
            env.write_config(text.replace(module, f"module = {p11fault_path()}\n"))
        recs = self.refresh_records()
        self.active = {r["selector"] for r in recs if r["state"] == "active"}
        self.standby = {r["selector"] for r in recs if r["state"] == "standby"}

    @staticmethod
    def e_assert(cond, what):
        if not cond:
            raise AssertionError(what)

    def start(self, args=(), wait=True, env=None):
        e = dict(self.e.env)
        e.update(P11FAULT_MODULE=SOFTHSM, P11FAULT_CONTROL=self.control,
                 P11FAULT_STATS=self.stats_path)
        if env:
            e.update(env)
        if self.log_f is None:
            self.log_f = open(self.logfile, "ab")
        self.daemon = subprocess.Popen([prog("dkimkeepd"), "-c", self.e.conf, "-f"] + list(args),
                                       env=e, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=self.log_f)
        self.e.procs.append(self.daemon)
        if wait:
            self.wait_ready()
        return self.daemon

    def wait_ready(self, timeout=60):
        """Until the daemon logs that it is ready: the socket may accept connections
        (into its backlog) before the key rings are loaded and their verdicts logged."""
        end = time.time() + timeout
        while time.time() < end:
            if self.daemon.poll() is not None:
                raise AssertionError(f"dkimkeepd exited {self.daemon.returncode}: {self.log()}")
            if re.search(r"dkimkeepd \S+ ready on ", self.log()):
                return
            time.sleep(0.05)
        raise AssertionError(f"dkimkeepd did not get ready: {self.log()}")

    def stop(self, sig=15, timeout=60):
        self.daemon.send_signal(sig)
        rc = self.daemon.wait(timeout=timeout)
        return rc, self.log()

    def close(self):
        if self.log_f is not None:
            self.log_f.close()

    def log(self):
        with open(self.logfile, "rb") as f:
            return f.read().decode(errors="replace")

    def rules(self, text):
        """Replace p11fault's control file (by rename, as its README asks)."""
        tmp = self.control + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.control)

    def stats(self):
        out = {}
        with open(self.stats_path) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    name, n = line.split()
                    out[name] = int(n)
        return out

    def status(self):
        return json.loads(self.e.cli("status", "--json").stdout)

    def ring_slots(self):
        return {(r["domain"], r["alg"]): r["slot"] for r in self.status()["rings"]}

    def token_states(self):
        return {t["name"]: t["state"] for t in self.status()["tokens"]}


class Load:
    """Signing without pause from several threads until stopped: dkimkeep sign
    processes and raw-protocol clients.  Every answer is kept, in order."""

    def __init__(self, w, msg=MSG, cli_threads=2, raw_threads=2):
        self.w, self.msg = w, msg
        self.hdr, self.body = split_message(msg)
        self.results = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = ([threading.Thread(target=self._cli) for _ in range(cli_threads)]
                        + [threading.Thread(target=self._raw, args=(k,)) for k in range(raw_threads)])

    def _add(self, kind, ok, sels, signed, error, started=0):
        # started: the mark when the request was sent; a request sent before a fault
        # may end after it (a sanitized dkimkeep sign takes long to exit)
        with self.lock:
            self.results.append({"kind": kind, "ok": ok, "selectors": sels, "signed": signed,
                                 "error": error, "started": started})

    def _cli(self):
        argv = [prog("dkimkeep"), "-c", self.w.e.conf, "sign"]
        while not self.stop.is_set():
            started = self.mark()
            try:
                cp = subprocess.run(argv, input=self.msg, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=self.w.e.env, timeout=120)
            except subprocess.TimeoutExpired:
                self._add("cli", False, [], None, "dkimkeep sign did not exit in 120 s")
                continue
            ok = cp.returncode == 0
            self._add("cli", ok, selectors_of(cp.stdout) if ok else [], cp.stdout if ok else None,
                      "" if ok else f"exit {cp.returncode}: {cp.stderr.decode(errors='replace')}",
                      started)

    def _raw(self, k):
        try:
            c = RawClient(self.w.e.socket, timeout=120)
        except OSError as e:
            self._add("raw", False, [], None, f"connect: {e}")
            return
        i = 0
        while not self.stop.is_set():
            i += 1
            started = self.mark()
            try:
                c.send(frame(sign_request(k * 1000000 + i, self.hdr, self.body)))
                r = c.recv_response()
            except OSError as e:
                self._add("raw", False, [], None, f"socket: {e}")
                return
            if r is None:
                self._add("raw", False, [], None, "connection closed by the daemon")
                return
            ok = r["status"] == "OK"
            signed = b"".join(s["header"].encode() + b"\r\n" for s in r["sigs"]) + self.msg
            self._add("raw", ok, [s["selector"] for s in r["sigs"]] if ok else [],
                      signed if ok else None, "" if ok else f'{r["status"]}: {r["error"]}',
                      started)
        c.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=300)
        return self.results

    def mark(self):
        with self.lock:
            return len(self.results)

    def since(self, mark, selectors):
        """Successful answers to requests sent after mark whose signatures all use keys
        in selectors."""
        with self.lock:
            return [r for r in self.results[mark:] if r["started"] >= mark
                    and r["ok"] and r["selectors"] and set(r["selectors"]) <= selectors]


class FailoverCase(EnvTestCase):
    """Runs load through a fault and (optionally) its repair; no request may fail."""

    def world(self, fault=True, **kw):
        w = RingWorld(self.e, fault=fault, **kw)
        self.addCleanup(w.close)
        w.start()
        return w

    def through_fault(self, w, inject, repair=None, down="primary"):
        load = Load(w).start()
        try:
            wait_for(lambda: len(load.since(0, w.active)) >= 10, "signing on the primary works")
            before = load.since(0, w.active)[-1]
            mark = load.mark()
            inject()
            wait_for(lambda: len(load.since(mark, w.standby)) >= 20,
                     "signatures move to the standby keys")
            # The fault lasts over several health checks (health_interval = 1s): the
            # check must keep the token down, and nothing may sign on it meanwhile.
            mark = load.mark()
            time.sleep(3.5)
            wait_for(lambda: len(load.since(mark, w.standby)) >= 20, "more standby signatures")
            after = load.since(mark, w.standby)
            self.assertEqual(load.since(mark, w.active), [], "a primary key signed while down")
            self.assertNotIn("is back up", w.log(), "the health check let a failing token up")
            self.assertEqual(w.token_states()[down], "down")
            self.assertEqual(set(w.ring_slots().values()), {"backup"}, w.status()["rings"])
            back = []
            if repair is not None:
                repair()
                mark = load.mark()
                wait_for(lambda: len(load.since(mark, w.active)) >= 20,
                         "signatures move back to the primary keys")
                back = load.since(mark, w.active)
                wait_for(lambda: set(w.ring_slots().values()) == {"primary"},
                         "status shows every ring on the primary slot")
                self.assertEqual(w.token_states(), {"primary": "up", "backup": "up"})
        finally:
            results = load.finish()
        failed = [r for r in results if not r["ok"]]
        self.assertEqual(failed, [], f"{len(failed)} of {len(results)} requests failed, first: "
                         f"{failed[:1]}\ndaemon log:\n{w.log()[-4000:]}")
        self.assertTrue(all(len(r["selectors"]) == 2 for r in results), "two signatures each")
        # independent verifiers judge signatures from each phase, from both kinds of client
        for r in [before, after[0], after[-1]] + [x for x in after if x["kind"] == "cli"][:1] \
                + [x for x in after if x["kind"] == "raw"][:1] + back[-1:]:
            w.verify(r["signed"], min_sigs=2)
        return results


class PrimaryFails(FailoverCase):
    def test_token_directory_removed(self):
        """Real SoftHSM failure: the primary token's files disappear under load."""
        w = self.world(fault=False)
        primary = None
        for obj in glob.glob(os.path.join(self.e.tokens, "*", "token.object")):
            with open(obj, "rb") as f:
                if b"dk-primary" in f.read():
                    primary = os.path.dirname(obj)
        self.assertIsNotNone(primary, "the primary token's directory")
        self.through_fault(w, lambda: shutil.rmtree(primary))
        self.assertRegex(w.log(), r'token "primary" \(dk-primary\) is down')

    def test_device_error_then_recovery(self):
        w = self.world()
        self.through_fault(w, lambda: w.rules("C_Sign every CKR_DEVICE_ERROR token=dk-primary\n"),
                           repair=lambda: w.rules(""))
        # the first failure, and the health checks' test signatures while it lasted
        self.assertGreaterEqual(w.stats().get("C_Sign.injected", 0), 3)
        self.assertIn("device error", w.log())
        self.assertRegex(w.log(), r'token "primary" \(dk-primary\) is back up')

    def test_session_handle_invalid_then_recovery(self):
        w = self.world()
        self.through_fault(
            w, lambda: w.rules("C_SignInit,C_Sign every CKR_SESSION_HANDLE_INVALID "
                               "token=dk-primary\n"),
            repair=lambda: w.rules("# repaired\n"))
        self.assertGreaterEqual(w.stats().get("C_SignInit.injected", 0), 3)

    def test_hung_sign_then_recovery(self):
        """C_Sign never returns on the primary: the sign_timeout watchdog moves the
        request to the standby key; clearing the hang lets the primary recover."""
        w = self.world()
        self.through_fault(w, lambda: w.rules("C_Sign hang token=dk-primary\n"),
                           repair=lambda: w.rules(""))
        rc, log = w.stop()
        self.assertEqual(rc, 0, log[-3000:])



class DownAtStart(FailoverCase):
    def down_at_start_then_up(self, rule, why):
        """The daemon starts with its primary token failing (rule): it says why, signs
        with the standby keys meanwhile, and takes the token up at a health check once
        it works, its keys listed again."""
        w = RingWorld(self.e, fault=True)
        self.addCleanup(w.close)
        w.rules(rule)
        w.start()
        self.assertRegex(w.log(), r'token "primary" \(\S+\) is not available at start: '
                                  rf'.*{why}.*tries it again at every health check')
        self.assertEqual(w.token_states()["primary"], "down")
        cp = w.sign(MSG, check=EX_OK)
        self.assertTrue(set(selectors_of(cp.stdout)) <= w.standby, cp.stdout[:400])
        w.verify(cp.stdout, min_sigs=2)
        w.rules("")
        wait_for(lambda: w.token_states()["primary"] == "up", "the health check takes it up")
        self.assertRegex(w.log(), r'token "primary" \(\S+\) is back up')
        # the keys are listed again on a helper thread once the token is up
        wait_for(lambda: set(w.ring_slots().values()) == {"primary"}, "the rings on the primary")
        cp = w.sign(MSG, check=EX_OK)
        self.assertTrue(set(selectors_of(cp.stdout)) <= w.active, cp.stdout[:400])
        w.verify(cp.stdout, min_sigs=2)
        rc, log = w.stop()
        self.assertEqual(rc, 0, log[-3000:])
        return log

    def test_found_but_not_logged_in(self):
        """The token is there, but no session opens: no login at start."""
        self.down_at_start_then_up("C_OpenSession every CKR_DEVICE_ERROR token=dk-primary\n",
                                   "device error")

    def test_not_found(self):
        """The token cannot be found at start (its info fails): found by a health check."""
        log = self.down_at_start_then_up(
            "C_GetTokenInfo every CKR_DEVICE_ERROR token=dk-primary\n", "token not found")
        self.assertRegex(log, r'token "primary" \(dk-primary\) found')

    def test_refused_pin_never_tried_again(self):
        """A health check's login that the token refuses (a wrong PIN) is made once:
        later checks do not try again, whatever happens (tokens lock)."""
        w = RingWorld(self.e, fault=True)
        self.addCleanup(w.close)
        w.rules("C_OpenSession every CKR_DEVICE_ERROR token=dk-primary\n")
        w.start()
        logins = w.stats().get("C_Login", 0)  # the backup's
        w.rules("C_Login every CKR_PIN_INCORRECT token=dk-primary\n")
        wait_for(lambda: w.stats().get("C_Login", 0) == logins + 1, "one login attempt")
        time.sleep(4)  # four more health checks (health_interval = 1s)
        w.rules("")
        time.sleep(3)
        self.assertEqual(w.stats().get("C_Login", 0), logins + 1, "the PIN was tried again")
        self.assertEqual(w.token_states()["primary"], "down")
        st = {t["name"]: t for t in w.status()["tokens"]}
        self.assertIn("PIN", st["primary"]["last_error"])
        # said once, at error level, with what to do
        self.assertEqual(len(re.findall(r'token "primary" stays down: .*PIN', w.log())), 1,
                         w.log()[-3000:])
        cp = w.sign(MSG, check=EX_OK)  # the standby keys still sign
        self.assertTrue(set(selectors_of(cp.stdout)) <= w.standby, cp.stdout[:400])
        rc, log = w.stop()
        self.assertEqual(rc, 0, log[-3000:])



class HungBatch(FailoverCase):
    def test_batch_behind_hung_call_moves_on(self):
        """A worker takes the queued requests of one connection together.  When the
        first of them hangs in C_Sign, the rest of its batch must go back to the
        queue and be signed with the standby keys while the token is still hung,
        not wait in the stuck worker until the hang ends."""
        # One algorithm: one C_Sign per request.  Counted, not timed: the first
        # two C_Sign calls on the primary (A's and B's) are slow, the third (the
        # batch's first) hangs whenever it comes.  A slow call stays well inside
        # the sign_timeout; the hang lasts until the rules are emptied.
        w = self.world(algs=("ed25519-sha256",), sign_timeout_ms=3000)
        hdr, body = split_message(MSG)
        w.rules("C_Sign delay 1000 token=dk-primary\n"
                "C_Sign after 3 hang token=dk-primary\n")
        # 30 s: far past the sign_timeout, far short of the hang (until repaired).
        a, b, c = (RawClient(w.e.socket, timeout=30) for _ in range(3))
        self.addCleanup(lambda: [x.close() for x in (a, b, c)])
        a.send(frame(sign_request(1, hdr, body)))
        b.send(frame(sign_request(2, hdr, body)))
        # Both workers are inside their slow C_Sign: C's four requests queue
        # behind them, read in one go, and the first worker free takes them as
        # one batch.
        wait_for(lambda: w.stats().get("C_Sign.delayed", 0) >= 2,
                 "A's and B's C_Sign calls are under way")
        c.send(b"".join(frame(sign_request(10 + i, hdr, body)) for i in range(4)))
        for cl, rid in ((a, 1), (b, 2)):
            r = cl.recv_response()
            self.assertEqual((r["id"], r["status"]), (rid, "OK"), r)
        got = {}
        for _ in range(4):
            r = c.recv_response()  # within the client timeout, the hang still on
            self.assertIsNotNone(r, "the daemon closed the connection")
            got[r["id"]] = r
        self.assertEqual(sorted(got), [10, 11, 12, 13])
        for rid, r in got.items():
            self.assertEqual(r["status"], "OK", r)
            sels = {s["selector"] for s in r["sigs"]}
            self.assertTrue(sels and sels <= w.standby, f"request {rid} signed with {sels}")
            signed = b"".join(s["header"].encode() + b"\r\n" for s in r["sigs"]) + MSG
            w.verify(signed)
        # Only the batch's first call hung (the watchdog took it away, its worker
        # still inside it); the rest of the batch never reached the hung token.
        self.assertEqual(w.log().count("worker stuck"), 1, w.log()[-3000:])
        w.rules("")
        rc, log = w.stop()
        self.assertEqual(rc, 0, log[-3000:])


class BothFail(FailoverCase):
    def test_both_tokens_failing_then_recovery(self):
        w = self.world()
        w.rules("C_Sign every CKR_DEVICE_ERROR\n")  # no token=: both
        for _ in range(3):
            # A bound, not a speed test: the answer must not wait for the 30 s client timeout.
            cp = w.sign(MSG, check=EX_UNAVAILABLE, timeout=20)
            self.assertEqual(cp.stdout, b"")
            lines = cp.stderr.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, cp.stderr)
            self.assertRegex(lines[0], r"down|unavailable")
        self.assertEqual(w.token_states(), {"primary": "down", "backup": "down"})
        self.assertEqual(set(w.ring_slots().values()), {"none"})
        pid = w.daemon.pid
        w.rules("")
        signed = []

        def signs():
            cp = w.sign(MSG, check=None, timeout=20)
            if cp.returncode == EX_OK:
                signed.append(cp.stdout)
                return True
            self.assertEqual(cp.returncode, EX_UNAVAILABLE, cp.stderr)
            return False

        wait_for(signs, "signing works again without a restart")
        self.assertTrue(w.alive())
        self.assertEqual(w.daemon.pid, pid)
        w.verify(signed[0], min_sigs=2)
        wait_for(lambda: w.token_states() == {"primary": "up", "backup": "up"},
                 "both tokens are up")
        wait_for(lambda: set(selectors_of(w.sign(MSG).stdout)) <= w.active,
                 "signatures come from the primary keys")


class LoginAtStart(FailoverCase):
    def start_with_wrong_pin(self):
        w = RingWorld(self.e, fault=True)
        self.addCleanup(w.close)
        self.e.pin("primary.pin", "9999")  # the token's PIN is 1234
        w.start(wait=False)
        rc = w.daemon.wait(timeout=60)
        return w, rc, w.log()

    def test_wrong_pin_refused_once(self):
        w, rc, log = self.start_with_wrong_pin()
        self.assertEqual(rc, EX_NOPERM, log)
        self.assertIn("CKR_PIN_INCORRECT", log)
        self.assertFalse(os.path.exists(self.e.socket), "no socket: the daemon never served")
        # Real tokens lock after a few wrong PINs: the daemon must try exactly once.
        self.assertEqual(w.stats().get("C_Login"), 1, w.stats())

    def test_wrong_pin_message_is_clear(self):
        w, rc, log = self.start_with_wrong_pin()
        self.assertEqual(rc, EX_NOPERM, log)
        line = [l for l in log.splitlines() if "PIN" in l]
        self.assertEqual(len(line), 1, log)
        # what failed, on which token, with which PIN file, and what to do
        self.assertEqual(line[0].count("[token primary]"), 1, line[0])
        self.assertIn('token "dk-primary"', line[0])
        self.assertIn(self.e.path("primary.pin"), line[0])
        self.assertIn("correct the PIN file", line[0])


# -- key hygiene ---------------------------------------------------------------

def mkkey(a):
    """Make an RSA key pair with chosen attributes, and dkimkeep's metadata beside it,
    straight through PKCS#11 (ctypes on SoftHSM).  Runs in its own process
    (SOFTHSM2_CONF is read at C_Initialize)."""
    import ctypes as C
    ul = C.c_ulong
    CKA = dict(CLASS=0x0, TOKEN=0x1, PRIVATE=0x2, LABEL=0x3, APPLICATION=0x10, VALUE=0x11,
               ID=0x102, SENSITIVE=0x103, ENCRYPT=0x104, DECRYPT=0x105, UNWRAP=0x107,
               SIGN=0x108, VERIFY=0x10A, DERIVE=0x10C, MODULUS_BITS=0x121,
               PUBLIC_EXPONENT=0x122, EXTRACTABLE=0x162, MODIFIABLE=0x170)

    class Attr(C.Structure):
        _fields_ = [("type", ul), ("value", C.c_void_p), ("len", ul)]

    class Mech(C.Structure):
        _fields_ = [("mech", ul), ("param", C.c_void_p), ("len", ul)]

    lib = C.CDLL(a["module"])
    keep = []

    def tmpl(pairs):
        arr = (Attr * len(pairs))()
        for i, (t, v) in enumerate(pairs):
            if isinstance(v, bool):
                b = C.create_string_buffer(b"\x01" if v else b"\x00", 1)
            elif isinstance(v, int):
                b = ul(v)
            else:
                b = C.create_string_buffer(v, len(v))
            keep.append(b)
            arr[i] = Attr(CKA[t], C.cast(C.pointer(b), C.c_void_p), C.sizeof(b))
        return arr

    def ck(name, *args):
        f = getattr(lib, name)
        f.restype = ul
        rv = f(*args)
        if rv != 0:
            raise SystemExit(f"{name}: CKR 0x{rv:x}")

    ck("C_Initialize", None)
    n = ul(0)
    ck("C_GetSlotList", C.c_ubyte(1), None, C.byref(n))
    slots = (ul * n.value)()
    ck("C_GetSlotList", C.c_ubyte(1), slots, C.byref(n))
    for slot in slots[:n.value]:
        info = C.create_string_buffer(1024)
        ck("C_GetTokenInfo", ul(slot), info)
        if info.raw[:32].rstrip(b" ") == a["label"].encode():
            break
    else:
        raise SystemExit(f"no token {a['label']}")
    h = ul(0)
    ck("C_OpenSession", ul(slot), ul(6), None, None, C.byref(h))  # serial, read-write
    pin = a["pin"].encode()
    ck("C_Login", h, ul(1), C.c_char_p(pin), ul(len(pin)))
    kid, label = bytes.fromhex(a["id"]), a["selector"].encode()
    pub = tmpl([("TOKEN", True), ("PRIVATE", False), ("VERIFY", True), ("ENCRYPT", False),
                ("MODULUS_BITS", a["bits"]), ("PUBLIC_EXPONENT", b"\x01\x00\x01"),
                ("ID", kid), ("LABEL", label)])
    priv = tmpl([("TOKEN", True), ("PRIVATE", True), ("SENSITIVE", a["sensitive"]),
                 ("EXTRACTABLE", a["extractable"]), ("SIGN", True), ("DECRYPT", a["decrypt"]),
                 ("UNWRAP", False), ("DERIVE", False), ("ID", kid), ("LABEL", label)])
    hpub, hpriv = ul(0), ul(0)
    mech = Mech(0, None, 0)  # CKM_RSA_PKCS_KEY_PAIR_GEN
    ck("C_GenerateKeyPair", h, C.byref(mech), pub, ul(len(pub)), priv, ul(len(priv)),
       C.byref(hpub), C.byref(hpriv))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta = (f"v=1\ndomain={a['domain']}\nselector={a['selector']}\nalg=rsa-sha256\n"
            f"slot={a['slot']}\nstate={a['state']}\ncreated={now}\nchanged={now}\nrev=1\n")
    data = tmpl([("CLASS", 0), ("TOKEN", True), ("PRIVATE", True), ("MODIFIABLE", True),
                 ("APPLICATION", b"dkimkeep"), ("LABEL", a["id"].encode()),
                 ("VALUE", meta.encode())])
    obj = ul(0)
    ck("C_CreateObject", h, data, ul(len(data)), C.byref(obj))
    ck("C_Logout", h)
    ck("C_CloseSession", h)
    ck("C_Finalize", None)


class Hygiene(EnvTestCase):
    """Unsafe keys are refused by name at load and never sign; weak RSA warns."""

    BAD = [  # domain, selector, attributes, what the refusal says
        ("extractable.example", "bad-extractable", dict(extractable=True), "extractable"),
        ("decrypt.example", "bad-decrypt", dict(decrypt=True), "may decrypt"),
        ("notsensitive.example", "bad-notsensitive", dict(sensitive=False), "not sensitive"),
        ("small.example", "bad-rsa768", dict(bits=768), "too weak"),
    ]

    def make_key(self, domain, selector, slot="primary", state="active", bits=2048,
                 sensitive=True, extractable=False, decrypt=False):
        args = dict(module=SOFTHSM, label="dk-primary" if slot == "primary" else "dk-backup",
                    pin="1234", domain=domain, selector=selector, slot=slot, state=state,
                    bits=bits, sensitive=sensitive, extractable=extractable, decrypt=decrypt,
                    id=os.urandom(8).hex())
        self.e.run([sys.executable, __file__, "--mkkey", json.dumps(args)], check=0)
        return args["id"]

    def test_unsafe_keys_refused_and_weak_warned(self):
        bad = [d for d, _, _, _ in self.BAD]
        extra_domains = bad + ["weak.example", "nostandby.example"]
        extra = "".join(f"[domain {d}]\nalgorithms = rsa-sha256\nprimary = primary\n"
                        + ("" if d == "nostandby.example" else "backup = backup\n") + "\n"
                        for d in extra_domains)
        extra += (f"[client tests]\nuid = {os.getuid()}\n"
                  f"domains = example.com, {', '.join(extra_domains)}\n")
        w = RingWorld(self.e, algs=("rsa-sha256",), client=False, extra=extra)
        self.addCleanup(w.close)
        ids = {}
        for domain, selector, attrs, _ in self.BAD:
            ids[selector] = self.make_key(domain, selector, **attrs)
            self.e.cli("key", "generate", "--domain", domain, "--alg", "rsa-sha256",
                       "--slot", "backup", "--selector", f"{selector}-standby")
        self.make_key("nostandby.example", "bad-nostandby", extractable=True)
        # RSA-1024 imported: accepted with a warning (RFC 8301 wants 2048)
        pem = self.e.path("rsa1024.pem")
        self.e.run(["openssl", "genrsa", "-out", pem, "1024"], check=0)
        cp = self.e.cli("key", "import", "--domain", "weak.example", "--selector", "weak1024",
                        "--pem", pem, "--activate")
        self.assertIn(b"2048", cp.stderr)
        w.refresh_records()
        # the CLI shows the same verdicts the daemon will reach
        listing = {k["selector"]: k for k in json.loads(self.e.cli("key", "list", "--json").stdout)}
        for _, selector, _, _ in self.BAD:
            self.assertFalse(listing[selector]["usable"], listing[selector])
        self.assertTrue(listing["weak1024"]["usable"] and listing["weak1024"]["weak"])

        w.start()
        log = w.log()
        for domain, selector, _, why in self.BAD:
            with self.subTest(key=selector):
                self.assertRegex(
                    log, rf"key {ids[selector]} \(selector {selector}, domain {domain}\) on "
                         rf'token "primary" is never used to sign: [^\n]*{why}')
                msg = (f"From: joe@{domain}\r\nTo: a@example.net\r\nSubject: hygiene\r\n\r\n"
                       "body\r\n").encode()
                out = w.sign(msg).stdout
                self.assertEqual(selectors_of(out), [f"{selector}-standby"])  # the ring fell back
                w.verify(out)
        self.assertRegex(log, r"selector weak1024, domain weak\.example\) is RSA-1024: weaker "
                              r"than 2048 bits")
        out = w.sign(b"From: joe@weak.example\r\nTo: a@example.net\r\n\r\nbody\r\n").stdout
        self.assertEqual(selectors_of(out), ["weak1024"])
        w.verify(out)
        # a domain whose only key is refused has no key at all
        self.assertRegex(log, r"selector bad-nostandby, domain nostandby\.example\) on token "
                              r'"primary" is never used to sign: [^\n]*extractable')
        cp = w.sign(b"From: joe@nostandby.example\r\n\r\nbody\r\n", check=None)
        self.assertNotEqual(cp.returncode, EX_OK)
        self.assertEqual(cp.stdout, b"")
        self.assertIn(b"no usable rsa-sha256 key", cp.stderr)
        slots = w.ring_slots()
        self.assertEqual(slots[("nostandby.example", "rsa-sha256")], "none")
        for domain in bad:
            self.assertEqual(slots[(domain, "rsa-sha256")], "backup")
        self.assertEqual(slots[("weak.example", "rsa-sha256")], "primary")


# -- the standby drill ---------------------------------------------------------

class DnsServer:
    """A tiny authoritative UDP DNS server (dnspython) for TXT records and CNAMEs."""

    def __init__(self):
        import dns.message  # noqa: F401 (fail early when dnspython is missing)
        self.txt, self.cname = {}, {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.queries = 0
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self):
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            r.flags |= 0x0400  # AA
            qname = q.question[0].name
            name = qname.to_text(omit_final_dot=True).lower()
            self.queries += 1
            if name in self.cname:
                r.answer.append(dns.rrset.from_text(qname, 60, "IN", "CNAME",
                                                    self.cname[name] + "."))
                name = self.cname[name]
            if name in self.txt and q.question[0].rdtype == dns.rdatatype.TXT:
                v = self.txt[name]
                text = " ".join('"%s"' % v[i:i + 255] for i in range(0, len(v), 255))
                r.answer.append(dns.rrset.from_text(name + ".", 60, "IN", "TXT", text))
            elif name not in self.txt:
                r.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(r.to_wire(), addr)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=10)
        self.sock.close()


class Drill(EnvTestCase):
    def drill(self, *args, code=EX_OK):
        cp = self.e.cli("key", "drill", "--domain", "example.com", "--json", *args, check=code,
                        timeout=60)
        if code != EX_OK:
            lines = cp.stderr.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, cp.stderr)
            self.assertIn("drill of example.com failed", lines[0])
        return json.loads(cp.stdout)

    def dns_world(self):
        dns = DnsServer()
        self.addCleanup(dns.close)
        w = World(self.e, extra=f"[dns]\nresolver = 127.0.0.1:{dns.port}\n")
        records = w.refresh_records()
        for r in records:
            dns.txt[r["name"].lower()] = r["value"]
        return w, dns, records

    def test_offline_passes_and_its_signatures_verify(self):
        w = World(self.e)
        d = self.drill("--offline")
        self.assertEqual((d["ok"], d["source"], d["missing"]), (True, "offline", []))
        standby = sorted(r["selector"] for r in w.refresh_records() if r["state"] == "standby")
        self.assertEqual(sorted(k["selector"] for k in d["keys"]), standby)
        for k in d["keys"]:
            self.assertTrue(k["ok"], k)
            self.assertEqual(k["token"], "backup")
            w.verify(k["message"].encode())  # dkimpy + Mail::DKIM, with the published records
        text = self.e.cli("key", "drill", "--domain", "example.com", "--offline").stdout.decode()
        self.assertIn("2 of 2 standby keys can take over", text)

    def test_dns_passes_then_missing_record_fails(self):
        w, dns, records = self.dns_world()
        # one standby record reached through a CNAME, as delegated DKIM setups publish them
        rsa = next(r for r in records if r["state"] == "standby" and r["alg"] == "rsa-sha256")
        ed = next(r for r in records if r["state"] == "standby" and r["alg"] == "ed25519-sha256")
        dns.cname[rsa["name"].lower()] = "rsa-standby.keys.example.net"
        dns.txt["rsa-standby.keys.example.net"] = dns.txt.pop(rsa["name"].lower())
        d = self.drill()
        self.assertEqual((d["ok"], d["source"], d["resolver"]), (True, "dns", f"127.0.0.1:{dns.port}"))
        self.assertTrue(all(k["ok"] for k in d["keys"]), d["keys"])
        self.assertGreaterEqual(dns.queries, 2)
        for k in d["keys"]:
            w.verify(k["message"].encode())
        del dns.txt[ed["name"].lower()]
        d = self.drill(code=1)
        keys = {k["selector"]: k for k in d["keys"]}
        self.assertFalse(d["ok"])
        self.assertTrue(keys[rsa["selector"]]["ok"])
        self.assertEqual(keys[ed["selector"]]["problem"], "record_missing")
        self.assertIn("NXDOMAIN", keys[ed["selector"]]["detail"])
        self.assertIn(ed["name"], keys[ed["selector"]]["detail"])
        cp = self.e.cli("key", "drill", "--domain", "example.com", check=1, timeout=60)
        self.assertRegex(cp.stdout.decode(), rf"standby key {re.escape(ed['name'])} .*FAILED: "
                                             r"record missing")

    def test_wrong_key_revoked_and_unreachable_dns(self):
        w, dns, records = self.dns_world()
        active = next(r for r in records if r["state"] == "active" and r["alg"] == "rsa-sha256")
        rsa = next(r for r in records if r["state"] == "standby" and r["alg"] == "rsa-sha256")
        ed = next(r for r in records if r["state"] == "standby" and r["alg"] == "ed25519-sha256")
        dns.txt[rsa["name"].lower()] = active["value"]           # another key at the selector
        dns.txt[ed["name"].lower()] = "v=DKIM1; k=ed25519; p="   # revoked
        keys = {k["selector"]: k for k in self.drill(code=1)["keys"]}
        self.assertEqual(keys[rsa["selector"]]["problem"], "wrong_key")
        self.assertEqual(keys[ed["selector"]]["problem"], "revoked")
        dns.txt[ed["name"].lower()] = "v=DKIM1; k=rsa; " + active["value"].split("; ")[-1]
        keys = {k["selector"]: k for k in self.drill(code=1)["keys"]}
        self.assertEqual(keys[ed["selector"]]["problem"], "wrong_key")
        self.assertIn("k=rsa", keys[ed["selector"]]["detail"])
        # a resolver that does not answer
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        with open(self.e.conf) as f:
            text = f.read()
        self.e.write_config(text.replace(f"127.0.0.1:{dns.port}", f"127.0.0.1:{port}"))
        d = self.drill(code=1)
        self.assertEqual({k["problem"] for k in d["keys"]}, {"dns_error"})

    def test_missing_standby_algorithm_and_failing_backup_token(self):
        World(self.e, algs=("rsa-sha256",), extra="")
        with open(self.e.conf) as f:
            text = f.read()
        self.e.write_config(text.replace("algorithms = rsa-sha256\n",
                                         "algorithms = rsa-sha256, ed25519-sha256\n"))
        d = self.drill("--offline", code=1)
        self.assertEqual(d["missing"], ["ed25519-sha256"])
        self.assertTrue(all(k["ok"] for k in d["keys"]))
        # the backup token fails to sign: the drill says so
        self.e.write_config(text.replace(f"module = {SOFTHSM}\n", f"module = {p11fault_path()}\n"))
        control = self.e.path("p11fault.control")
        with open(control, "w") as f:
            f.write("C_Sign every CKR_DEVICE_ERROR token=dk-backup\n")
        cp = self.e.cli("key", "drill", "--domain", "example.com", "--offline", "--json",
                        check=1, env={"P11FAULT_MODULE": SOFTHSM, "P11FAULT_CONTROL": control})
        d = json.loads(cp.stdout)
        self.assertEqual([k["problem"] for k in d["keys"]], ["sign_failed"])
        self.assertIn("device error", d["keys"][0]["detail"])

    def test_usage(self):
        World(self.e, algs=("ed25519-sha256",), backup=False)
        cp = self.e.cli("key", "drill", check=64)
        self.assertIn(b"--domain", cp.stderr)
        cp = self.e.cli("key", "drill", "--domain", "example.com", check=78)
        self.assertIn(b"backup=", cp.stderr)
        self.assertIn(b"key drill --domain D", self.e.cli("key", "--help").stdout)
        self.assertIn(b"key drill", self.e.cli("--help", conf=False).stdout)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--mkkey":
        mkkey(json.loads(sys.argv[2]))
        sys.exit(0)
    unittest.main(verbosity=2)
