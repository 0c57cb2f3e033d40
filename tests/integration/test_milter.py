"""dkimkeep-milter end to end: a real SoftHSM token, the real dkimkeepd, the
real milter, a private Postfix instance started by the test, and independent
verifiers (dkimpy; Mail::DKIM for RSA).

Postfix runs from its own config, queue and data directories in the test's
temp dir, listens only on loopback high ports, and relays every message to
an SMTP sink in this process, which keeps what arrives byte for byte.  The
system's Postfix (if any) is never started, stopped or reconfigured: the
tests check that /etc/postfix is unchanged and that nothing listens on :25
because of them.

A second set of tests speaks the milter protocol to dkimkeep-milter directly
(as Postfix and Sendmail do) to reach what a stock Postfix cannot easily
send: SMTP AUTH macros, odd header fields, an oversized header section.
"""
import hashlib
import os
import shutil
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, EnvTestCase, prog, EX_OK, EX_USAGE, EX_CONFIG  # noqa: E402
from daemon_harness import World  # noqa: E402

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
SWAKS = "/usr/bin/swaks"
SYSTEM_POSTFIX_DIR = "/etc/postfix"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening_on(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def tree_digest(path):
    """A digest of every file name, mode and content under path (None if absent)."""
    if not os.path.exists(path):
        return None
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(root, name)
            st = os.lstat(p)
            h.update(f"{p} {st.st_mode:o} {st.st_uid} {st.st_gid}\n".encode())
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


# -- the SMTP sink: where the private Postfix relays everything ------------------


class _SinkHandler(socketserver.StreamRequestHandler):
    """Just enough ESMTP for Postfix's smtp client: 8BITMIME and SMTPUTF8 so
    that Postfix never rewrites the body (a MIME downgrade breaks DKIM)."""

    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        self.reply("220 sink ESMTP")
        while True:
            line = self.rfile.readline(100000)
            if not line:
                return
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO"):
                self.wfile.write(b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                                 b"250-PIPELINING\r\n250 SIZE 104857600\r\n")
                self.wfile.flush()
            elif cmd.startswith(b"HELO") or cmd.startswith(b"MAIL") or cmd.startswith(b"RCPT") \
                    or cmd.startswith(b"RSET") or cmd.startswith(b"NOOP"):
                self.reply("250 ok")
            elif cmd == b"DATA":
                self.reply("354 go on")
                data = bytearray()
                while True:
                    l = self.rfile.readline(10000000)
                    if not l or l == b".\r\n":
                        break
                    if l.startswith(b"."):
                        l = l[1:]
                    data += l
                self.server.sink.add(bytes(data))
                self.reply("250 queued")
            elif cmd == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 no")


class _SinkServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SmtpSink:
    def __init__(self, save_dir):
        self.save_dir = save_dir
        os.makedirs(save_dir, exist_ok=True)
        self.messages = []
        self.cond = threading.Condition()
        self.server = _SinkServer(("127.0.0.1", 0), _SinkHandler)
        self.server.sink = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, data):
        with self.cond:
            self.messages.append(data)
            with open(os.path.join(self.save_dir, f"{len(self.messages):03d}.eml"), "wb") as f:
                f.write(data)
            self.cond.notify_all()

    def wait_for(self, marker, timeout=60):
        """The message whose Subject holds marker (bytes)."""
        end = time.time() + timeout
        with self.cond:
            while True:
                for m in self.messages:
                    hdr = m.split(b"\r\n\r\n", 1)[0]
                    if marker in hdr:
                        return m
                left = end - time.time()
                if left <= 0:
                    raise AssertionError(f"no message with {marker!r} reached the sink in "
                                         f"{timeout} s")
                self.cond.wait(left)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# -- a private Postfix instance ----------------------------------------------------

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{smtpd_addr} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PrivatePostfix:
    """Postfix with its own config_directory, queue_directory and data_directory."""

    def __init__(self, env, milter, relay_port):
        self.e = env
        self.dir = env.path("postfix")
        self.conf = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "spool")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "maillog")
        self.port = free_port()
        self.running = False
        self.master_pid = 0
        for d in (self.dir, self.conf, self.queue):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        # "postfix check" creates the queue's subdirectories and the data directory.
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(smtpd_addr=f"127.0.0.1:{self.port}"))
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("compatibility_level = 3.6\n")
        settings = {
            "config_directory": self.conf,
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "mta.milter-test.invalid",
            "mydestination": "",
            "relay_domains": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "mynetworks": "127.0.0.0/8",
            # Leave headers as the client wrote them: add no From, Date or Message-ID.
            "local_header_rewrite_clients": "",
            "relayhost": f"[127.0.0.1]:{relay_port}",
            "smtpd_milters": milter,
            "non_smtpd_milters": milter,
            "milter_default_action": "tempfail",
            "milter_protocol": "6",
            "disable_mime_output_conversion": "yes",
            "smtputf8_enable": "yes",
            "message_size_limit": "52428800",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "maillog_file": self.log,
            "maillog_file_prefixes": self.dir,
            "smtp_dns_support_level": "disabled",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        self.postconf(*[f"{k}={v}" for k, v in settings.items()])

    def run(self, *args, check=0):
        cp = self.e.run(list(args), check=None, timeout=120)
        if check is not None and cp.returncode != check:
            raise AssertionError(f"{' '.join(args)}: exit {cp.returncode}\n"
                                 f"{cp.stdout.decode(errors='replace')}"
                                 f"{cp.stderr.decode(errors='replace')}\n{self.maillog()}")
        return cp

    def postconf(self, *settings):
        return self.run(POSTCONF, "-c", self.conf, "-e", *settings)

    def maillog(self):
        try:
            with open(self.log, errors="replace") as f:
                return "maillog:\n" + f.read()[-6000:]
        except OSError:
            return "(no maillog)"

    def start(self):
        self.run(POSTFIX, "-c", self.conf, "check")
        self.run(POSTFIX, "-c", self.conf, "start")
        self.running = True
        with open(os.path.join(self.queue, "pid", "master.pid")) as f:
            self.master_pid = int(f.read().split()[0])
        end = time.time() + 30
        while not listening_on(self.port):
            if time.time() > end:
                raise AssertionError(f"postfix smtpd never listened on {self.port}\n"
                                     + self.maillog())
            time.sleep(0.1)

    def stop(self):
        if not self.running:
            return
        self.running = False
        cp = self.run(POSTFIX, "-c", self.conf, "stop", check=None)
        if cp.returncode != 0 and self.master_pid:
            # "postfix stop" needs the config directory; if it is gone, end the master
            # we started (by its pid, nothing else).
            try:
                os.kill(self.master_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def swaks(env, port, *args, check=0):
    argv = [SWAKS, "--server", "127.0.0.1", "--port", str(port), "--timeout", "120",
            ] + list(args)
    cp = env.run(argv, check=None, timeout=300)
    if check is not None and cp.returncode != check:
        raise AssertionError(f"swaks exit {cp.returncode}, wanted {check}\n"
                             f"{cp.stdout.decode(errors='replace')[-4000:]}"
                             f"{cp.stderr.decode(errors='replace')[-2000:]}")
    return cp


def crlf(text):
    """bytes with CRLF line ends from a str or bytes written with LF."""
    if isinstance(text, str):
        text = text.encode()
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def header_section(msg):
    return msg.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def make_messages(big_path):
    """(name, subject marker, message bytes with CRLF) sent through Postfix."""
    msgs = []
    msgs.append(("folded", b"milter-folded", crlf(
        "From: \"A display name long enough to be folded\"\n"
        " <joe@example.com>\n"
        "To: one@example.net,\n"
        "\ttwo@example.net,\n"
        "   three@example.net\n"
        "Subject: milter-folded\n"
        "  a subject   folded  over\tthree\n"
        "\tlines\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\n"
        "Message-ID: <folded@example.com>\n"
        "X-Empty:\n"
        "\n"
        "A body with   odd   spacing\t\n"
        "\n"
        "and trailing blank lines\n\n\n")))
    msgs.append(("8bit-utf8", b"milter-8bit", crlf(
        "From: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>\n"
        "To: b@example.net\n"
        "Subject: milter-8bit \u00c7a va? \u00fcn\u00efc\u00f6d\u00e9\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u65e5\u672c\u8a9e \U0001f600\n")))
    msgs.append(("multipart", b"milter-multipart", crlf(
        "From: joe@example.com\n"
        "To: c@example.net\n"
        "Subject: milter-multipart\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"==b0und==\"\n"
        "\n"
        "This is a MIME message.\n"
        "--==b0und==\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "See the attachment.\n"
        "--==b0und==\n"
        "Content-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=\"data.bin\"\n"
        "\n"
        + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\n" * 40
        + "--==b0und==--\n")))
    with open(big_path, "wb") as f:
        f.write(crlf("From: joe@example.com\nTo: d@example.net\nSubject: milter-10mb\n"
                     "Date: Mon, 23 Nov 2026 10:00:00 +0000\n\n"))
        line = b"%08d " + b"x" * 90 + b"\r\n"
        for i in range(10 * 1024 * 1024 // 101 + 1):
            f.write(line % i)
    with open(big_path, "rb") as f:
        msgs.append(("10mb", b"milter-10mb", f.read()))
    return msgs


class MilterWithPostfix(EnvTestCase):
    """Mail through a private Postfix and dkimkeep-milter arrives signed."""

    def setUp(self):
        super().setUp()
        for p in (POSTFIX, POSTCONF, SWAKS):
            self.assertTrue(os.access(p, os.X_OK), f"{p} is missing: run ci/install-deps")
        self.etc_before = tree_digest(SYSTEM_POSTFIX_DIR)
        self.port25_before = listening_on(25)
        os.chmod(self.e.dir, 0o711)  # Postfix's unprivileged processes reach their queue
        self.w = World(self.e, algs=("rsa-sha256", "ed25519-sha256"), backup=False,
                       extra="[milter]\nsign = local\non_error = tempfail\n")
        self.w.start()
        self.sink = SmtpSink(self.e.path("sink"))
        self.addCleanup(self.sink.close)
        # As docs/postfix.md sets it up: the socket under the queue directory, named
        # relative to it in main.cf (found the same way chrooted or not).
        self.pf = PrivatePostfix(self.e, "unix:dkimkeep/milter.sock", self.sink.port)
        self.msock_dir = os.path.join(self.pf.queue, "dkimkeep")
        os.mkdir(self.msock_dir)
        self.msock = os.path.join(self.msock_dir, "milter.sock")
        self.milter = self.start_milter()
        self.addCleanup(self.check_system_untouched)
        self.addCleanup(self.pf.stop)
        self.pf.start()

    def start_milter(self):
        if os.path.exists(self.msock):
            os.unlink(self.msock)
        p = self.e.spawn([prog("dkimkeep-milter"), "-c", self.e.conf, "-f", "-d",
                          "-p", f"unix:{self.msock}"])
        end = time.time() + 30
        while not os.path.exists(self.msock):
            if p.poll() is not None:
                raise AssertionError(f"dkimkeep-milter exited {p.returncode}: "
                                     f"{p.stderr.read().decode(errors='replace')}")
            if time.time() > end:
                raise AssertionError("dkimkeep-milter did not create its socket")
            time.sleep(0.05)
        # The operator's step (docs/postfix.md): Postfix's group may use the socket.
        shutil.chown(self.msock_dir, group="postfix")
        os.chmod(self.msock_dir, 0o750)
        shutil.chown(self.msock, group="postfix")
        return p

    def milter_log(self):
        """Kill the milter and return what it logged (stderr is unbuffered, and a line
        is written before the milter answers the MTA).  A clean SIGTERM stop is tested
        in MilterCommandLine: libmilter only notices it at a 5 s poll."""
        self.milter.kill()
        self.milter.wait(timeout=30)
        return self.milter.stderr.read().decode(errors="replace")

    def check_system_untouched(self):
        self.assertEqual(tree_digest(SYSTEM_POSTFIX_DIR), self.etc_before,
                         "/etc/postfix changed")
        if not self.port25_before:
            self.assertFalse(listening_on(25), "something listens on :25 after the test")

    def send(self, *args, check=0):
        return swaks(self.e, self.pf.port, "--from", "joe@example.com", "--to",
                     "anne@example.net", *args, check=check)

    def send_file(self, msg, check=0):
        path = self.e.write("send.eml", msg, 0o644)
        return self.send("--data", "@" + path, check=check)

    def queued_files(self):
        out = []
        for sub in ("incoming", "active", "deferred", "hold", "maildrop"):
            for root, _, files in os.walk(os.path.join(self.pf.queue, sub)):
                out += [os.path.join(root, f) for f in files]
        return out

    def test_signed_and_verified(self):
        """Plain, folded headers, 8-bit UTF-8, multipart and a 10 MB body arrive with
        an RSA and an Ed25519 signature that dkimpy and Mail::DKIM accept."""
        self.send("--header", "Subject: milter-plain", "--body", "Hello from the milter test.")
        got = self.sink.wait_for(b"milter-plain")
        self.assertEqual(header_section(got).count(b"DKIM-Signature:"), 2, got[:3000])
        self.assertNotIn(b"\r\r", got, "a CR doubled in the inserted header")
        self.w.verify(got, min_sigs=2)
        for name, marker, msg in make_messages(self.e.path("big.eml")):
            with self.subTest(msg=name):
                self.send_file(msg)
                got = self.sink.wait_for(marker, timeout=120)
                hdr = header_section(got)
                self.assertEqual(hdr.count(b"DKIM-Signature:"), 2, hdr[:3000])
                self.assertTrue(hdr.startswith(b"DKIM-Signature:"), hdr[:200])
                # Postfix adds its Received: and leaves the message itself alone
                # (swaks ends DATA with one more line end of its own).
                self.assertTrue(got.endswith(msg + b"\r\n"), f"{name} changed on the way")
                self.w.verify(got, min_sigs=2)
        log = self.milter_log()
        self.assertEqual(log.count("signed for example.com"), 5, log)

    def test_local_submission_and_unsignable_mail(self):
        """The sendmail command (pickup, non_smtpd_milters) is signed; mail without From,
        or from a domain the daemon does not sign for, is delivered unsigned and logged."""
        msg = crlf("From: joe@example.com\nTo: anne@example.net\nSubject: milter-pickup\n"
                   "Date: Mon, 23 Nov 2026 10:00:00 +0000\n\nsubmitted locally\n")
        cp = self.e.run(["/usr/sbin/sendmail", "-C", self.pf.conf, "-f", "joe@example.com",
                         "anne@example.net"], input=msg.replace(b"\r\n", b"\n"), check=None)
        self.assertEqual(cp.returncode, 0, cp.stderr.decode() + self.pf.maillog())
        self.w.verify(self.sink.wait_for(b"milter-pickup"), min_sigs=2)
        self.send_file(crlf("To: a@example.net\nSubject: milter-nofrom\n\nbody\n"))
        got = self.sink.wait_for(b"milter-nofrom")
        self.assertNotIn(b"DKIM-Signature", got)
        self.send_file(crlf("From: someone@elsewhere.org\nTo: a@example.net\n"
                            "Subject: milter-elsewhere\n\nbody\n"))
        got = self.sink.wait_for(b"milter-elsewhere")
        self.assertNotIn(b"DKIM-Signature", got)
        # and the milter still signs what it should
        self.send("--header", "Subject: milter-after", "--body", "still signing")
        self.w.verify(self.sink.wait_for(b"milter-after"), min_sigs=2)
        log = self.milter_log()
        self.assertRegex(log, r"not signed, passed on unsigned: it has no From field")
        self.assertRegex(log, r"not signed, passed on unsigned: dkimkeepd answered "
                              r"UNKNOWN_DOMAIN: .*elsewhere\.org")

    def test_daemon_down_tempfails(self):
        """With dkimkeepd stopped the client gets 451 and nothing is sent unsigned;
        once it is back the milter signs again (it reconnects by itself)."""
        self.send("--header", "Subject: milter-before", "--body", "warm the pool")
        self.w.verify(self.sink.wait_for(b"milter-before"), min_sigs=2)
        rc, _ = self.w.stop()
        self.assertEqual(rc, 0)
        cp = self.send("--header", "Subject: milter-down", "--body", "must not leave unsigned",
                       check=None)
        out = cp.stdout.decode(errors="replace")
        self.assertEqual(cp.returncode, 26, out[-3000:])  # swaks: not accepted after DATA
        self.assertRegex(out, r"<\*\* +451 4\.7\.1 ")
        self.assertEqual(self.queued_files(), [], "a tempfailed message was queued")
        time.sleep(2)
        self.assertFalse(any(b"milter-down" in m for m in self.sink.messages),
                         "the message was relayed although it could not be signed")
        self.w.start()
        self.send("--header", "Subject: milter-back", "--body", "signed again")
        self.w.verify(self.sink.wait_for(b"milter-back"), min_sigs=2)
        # A restart between two messages: the pooled connection is dead, a new one signs.
        self.w.stop()
        self.w.start()
        self.send("--header", "Subject: milter-restarted", "--body", "signed after a restart")
        self.w.verify(self.sink.wait_for(b"milter-restarted"), min_sigs=2)
        # The milter itself down: Postfix's milter_default_action = tempfail.
        self.milter_log()
        cp = self.send("--header", "Subject: milter-nomilter", "--body", "x", check=None)
        self.assertNotEqual(cp.returncode, 0)
        self.assertRegex(cp.stdout.decode(errors="replace"), r"<\*\* +4\d\d ")
        self.assertFalse(any(b"milter-nomilter" in m for m in self.sink.messages))


# -- the milter protocol, spoken directly (as Postfix and Sendmail speak it) ------

SMFIF_ADDHDRS = 0x01
SMFIP_NOHELO, SMFIP_NORCPT, SMFIP_NODATA = 0x02, 0x08, 0x200
SMFIP_HDR_LEADSPC = 0x100000
MTA_PROTOCOL = 0x1FFFFF  # every step may be skipped, every "no reply", SKIP, LEADSPC


class MilterClient:
    """The MTA side of the milter protocol (version 6), one SMTP connection."""

    def __init__(self, path, leadspc=True, timeout=60):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        offered = MTA_PROTOCOL if leadspc else MTA_PROTOCOL & ~SMFIP_HDR_LEADSPC
        self.send(b"O", struct.pack(">III", 6, 0x1FF, offered))
        code, data = self.recv()
        assert code == b"O", (code, data)
        _, self.actions, self.protocol = struct.unpack(">III", data[:12])
        self.leadspc = bool(self.protocol & SMFIP_HDR_LEADSPC)

    def send(self, code, data=b""):
        self.s.sendall(struct.pack(">I", len(data) + 1) + code + data)

    def recv(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    pkt, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return pkt[:1], pkt[1:]
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("the milter closed the connection")
            self.buf += chunk

    def step(self, code, data=b""):
        """Send one command; return (final reply code, [inserted (index, name, value)])."""
        self.send(code, data)
        inserted = []
        while True:
            c, d = self.recv()
            if c == b"i":
                idx = struct.unpack(">I", d[:4])[0]
                name, value = d[4:].split(b"\0")[:2]
                inserted.append((idx, name, value))
            elif c == b"p":  # progress
                continue
            else:
                self.last_reply = d
                return c, inserted

    def macros(self, cmd, **kv):
        self.send(b"D", cmd + b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                                       for k, v in kv.items()))

    def connect(self, host="client.example", family=b"4", addr="127.0.0.1"):
        if family == b"U":
            return self.step(b"C", host.encode() + b"\0U")[0]
        return self.step(b"C", host.encode() + b"\0" + family + struct.pack(">H", 4242)
                         + addr.encode() + b"\0")[0]

    def mail(self, sender="<joe@example.com>", **macros):
        self.macros(b"M", **macros)
        r = self.step(b"M", sender.encode() + b"\0")[0]
        if r == b"c" and not self.protocol & SMFIP_NORCPT:
            r = self.step(b"R", b"<anne@example.net>\0")[0]
        if r == b"c" and not self.protocol & SMFIP_NODATA:
            r = self.step(b"T")[0]
        return r

    def message(self, fields, body, qid="QID1"):
        """Send header fields [(name, value as in the message after "name:")] and the
        body; return (the code that ended it, the fields inserted at EOM)."""
        for name, value in fields:
            if not self.leadspc:
                value = value[1:] if value[:1] == b" " else value
            r = self.step(b"L", name + b"\0" + value + b"\0")[0]
            if r != b"c":
                return r, []
        r = self.step(b"N")[0]
        if r != b"c":
            return r, []
        for i in range(0, len(body), 65535):
            r = self.step(b"B", body[i:i + 65535])[0]
            if r != b"c":
                return r, []
        self.macros(b"E", i=qid)
        return self.step(b"E")

    def close(self):
        try:
            self.send(b"Q")
        except OSError:
            pass
        self.s.close()


def parse_message(msg):
    """[(name, value after the colon)] and the body of a CRLF message."""
    hdr, body = msg.split(b"\r\n\r\n", 1)
    fields = []
    for line in hdr.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            name, value = fields[-1]
            fields[-1] = (name, value + b"\n" + line)  # Postfix hands folds over as LF
        else:
            name, value = line.split(b":", 1)
            fields.append((name, value))
    return fields, body


def signed_message(msg, inserted, leadspc):
    """The message as the MTA sends it on after inserting the milter's fields."""
    lines = []
    for idx, name, value in inserted:
        assert idx == 0, f"inserted at {idx}, not at the top"
        assert b"\r" not in value, "CR in an inserted field: the MTA would send CR CR LF"
        # each insert at index 0 goes on top of the ones before it
        lines.insert(0, name + b":" + (b"" if leadspc else b" ")
                     + value.replace(b"\n", b"\r\n") + b"\r\n")
    return b"".join(lines) + msg


PLAIN = crlf("From: Joe <joe@example.com>\nTo: anne@example.net\nSubject: direct\n"
             "Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <direct@example.com>\n\n"
             "Hello.\n")


class MilterProtocol(unittest.TestCase):
    """dkimkeep-milter driven through the milter protocol itself.  One token and one
    daemon serve the whole class; each test starts its own milter with its own
    [milter] settings, from a config file of its own as docs/postfix.md suggests."""

    @classmethod
    def setUpClass(cls):
        cls.e = Env("milter-protocol")
        try:
            os.chmod(cls.e.dir, 0o711)
            cls.w = World(cls.e, algs=("rsa-sha256", "ed25519-sha256"), backup=False)
            cls.w.start()
        except BaseException:
            cls.e.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.e.cleanup()

    def setUp(self):
        if not self.w.alive():  # a test before this one failed with the daemon stopped
            self.w.start()

    def start(self, milter_conf="", start_daemon=True):
        if not start_daemon:
            self.w.stop()
        name = self._testMethodName
        conf = self.e.write(f"{name}.conf", f"[daemon]\nsocket = {self.e.socket}\n\n"
                            f"[milter]\n{milter_conf}\n", 0o644)
        self.msock = self.e.path(f"{name}.sock")
        self.milter = self.e.spawn([prog("dkimkeep-milter"), "-c", conf, "-f", "-d",
                                    "-p", f"unix:{self.msock}"])
        self.addCleanup(self.kill_milter)
        end = time.time() + 30
        while not os.path.exists(self.msock):
            if self.milter.poll() is not None or time.time() > end:
                raise AssertionError("dkimkeep-milter did not start: "
                                     + self.milter_log())
            time.sleep(0.05)

    def kill_milter(self):
        if self.milter.poll() is None:
            self.milter.kill()
            self.milter.wait()

    def milter_log(self):
        """Kill the milter (once) and return everything it logged; see
        MilterWithPostfix.milter_log."""
        self.kill_milter()
        if not hasattr(self, "_milter_log"):
            self._milter_log = self.milter.stderr.read().decode(errors="replace")
        return self._milter_log

    def client(self, **kw):
        c = MilterClient(self.msock, **kw)
        self.addCleanup(c.close)
        return c

    def sign(self, msg=PLAIN, leadspc=True, host="client.example", family=b"4",
             addr="127.0.0.1", **macros):
        """Run msg through a fresh milter connection: (code, signed message or None)."""
        c = self.client(leadspc=leadspc)
        r = c.connect(host, family, addr)
        if r != b"c":
            return r, None
        r = c.mail(**macros)
        if r != b"c":
            return r, None
        fields, body = parse_message(msg)
        r, inserted = c.message(fields, body)
        if r != b"c" or not inserted:
            return r, None
        return r, signed_message(msg, inserted, c.leadspc)

    def assert_signed(self, msg=PLAIN, **kw):
        r, out = self.sign(msg, **kw)
        self.assertEqual(r, b"c")
        self.assertIsNotNone(out, "no DKIM-Signature inserted")
        self.assertEqual(header_section(out).count(b"DKIM-Signature:"), 2)
        self.w.verify(out, min_sigs=2)
        return out

    def test_header_values_with_and_without_leading_space(self):
        """MTAs that give header values with their leading space (SMFIP_HDR_LEADSPC)
        and those that strip it both get signatures that verify, folds included."""
        self.start()
        folded = crlf("From: \"Joe\n\t Sixpack\" <joe@example.com>\nTo: a@example.net,\n"
                      "  b@example.net\nSubject:no space\nSubject2:   three spaces\n"
                      "X-Tab:\tvalue\nDate: Mon, 23 Nov 2026 10:00:00 +0000\n\nbody\n")
        for leadspc in (True, False):
            with self.subTest(leadspc=leadspc):
                self.assert_signed(PLAIN, leadspc=leadspc)
                if leadspc:  # without it, "Subject:no space" cannot be told apart
                    self.assert_signed(folded, leadspc=leadspc)

    def test_local_policy(self):
        """sign = local: a client outside internal_hosts is let through unsigned at
        connect; mail from inside, or not from the network at all, is signed."""
        self.start("sign = local\ninternal_hosts = 10.0.0.0/8, 2001:db8::/32\n")
        self.assertEqual(self.sign(addr="192.0.2.7")[0], b"a")
        self.assertEqual(self.sign(addr="127.0.0.1")[0], b"a")
        self.assert_signed(addr="10.1.2.3")
        self.assert_signed(family=b"6", addr="2001:db8::25")
        self.assert_signed(family=b"6", addr="::ffff:10.9.9.9")
        self.assert_signed(family=b"U")
        self.assertEqual(self.sign(family=b"6", addr="2001:db9::1")[0], b"a")

    def test_authenticated_policy(self):
        """sign = authenticated: SMTP AUTH'd senders ({auth_authen}) and local hosts."""
        self.start("sign = authenticated\ninternal_hosts = 10.0.0.0/8\n")
        self.assertEqual(self.sign(addr="192.0.2.7")[0], b"a")
        self.assertEqual(self.sign(addr="192.0.2.7", **{"{auth_authen}": ""})[0], b"a")
        self.assert_signed(addr="192.0.2.7", **{"{auth_authen}": "joe", "{auth_type}": "PLAIN"})
        self.assert_signed(addr="10.0.0.1")
        # per message, not per connection: the next MAIL FROM is judged again
        c = self.client()
        self.assertEqual(c.connect(addr="192.0.2.8"), b"c")
        self.assertEqual(c.mail(), b"a")
        self.assertEqual(c.mail(**{"{auth_authen}": "joe"}), b"c")
        r, ins = c.message(*parse_message(PLAIN))
        self.assertEqual((r, len(ins)), (b"c", 2))
        self.w.verify(signed_message(PLAIN, ins, c.leadspc), min_sigs=2)

    def test_all_policy(self):
        self.start("sign = all\ninternal_hosts = 10.0.0.0/8\n")
        self.assert_signed(addr="198.51.100.1")

    def test_odd_input(self):
        """Mail that cannot be signed passes unsigned; garbage never kills the milter."""
        self.start()
        cases = {
            "no From": crlf("To: a@example.net\nSubject: x\n\nbody\n"),
            "two From": crlf("From: a@example.com\nFrom: b@example.com\n\nbody\n"),
            "unknown domain": crlf("From: a@elsewhere.org\nSubject: x\n\nbody\n"),
            "bad From": crlf("From: not an address\nSubject: x\n\nbody\n"),
            "header over 1 MiB": crlf("From: joe@example.com\n" + "".join(
                f"X-Filler-{i:06d}: {'f' * 100}\n" for i in range(11000)) + "\nbody\n"),
        }
        for name, msg in cases.items():
            with self.subTest(case=name):
                r, out = self.sign(msg)
                self.assertIn(r, (b"a", b"c"), name)
                self.assertIsNone(out, f"{name}: signed")
        # header names the MTA should never send
        for fname in (b"", b"Bad Name", b"X-\xff", b"N" * 200):
            with self.subTest(name=fname[:20]):
                c = self.client()
                self.assertEqual(c.connect(), b"c")
                self.assertEqual(c.mail(), b"c")
                self.assertEqual(c.step(b"L", b"From\0 joe@example.com\0")[0], b"c")
                try:
                    r = c.step(b"L", fname + b"\0 v\0")[0]
                except EOFError:
                    r = b"closed"  # libmilter itself drops a field without a name
                self.assertIn(r, (b"a", b"closed") if not fname else (b"a",))
        # protocol garbage: random bytes, a truncated packet, a huge length, a reset
        for junk in (os.urandom(300), struct.pack(">I", 100) + b"Lpartial",
                     struct.pack(">I", 0x7FFFFFFF) + b"L", b"\x00\x00\x00\x01X"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.msock)
            s.sendall(junk)
            s.close()
        c = self.client()  # the same, midway through a message
        c.connect()
        c.mail()
        c.step(b"L", b"From\0 joe@example.com\0")
        c.s.close()
        # empty body, no body chunks at all, a body with lone CR and NUL bytes
        self.assert_signed(crlf("From: joe@example.com\nSubject: empty\n\n"))
        self.assert_signed(crlf("From: joe@example.com\nSubject: nul\n\n") +
                           b"a\x00b\rc\r\n\xff\xfe\r\n")
        self.assertIsNone(self.milter.poll(), "the milter died")
        self.assert_signed()
        log = self.milter_log()
        for what in ("no From field", "more than one From", "UNKNOWN_DOMAIN",
                     "over 1 MiB", "name is empty, too long or not printable"):
            self.assertIn(what, log)

    def test_daemon_down_default_tempfail(self):
        self.start(start_daemon=False)
        c = self.client()
        c.connect()
        c.mail()
        self.send_and_expect_tempfail(c)
        self.w.start()
        self.assert_signed()

    def send_and_expect_tempfail(self, c):
        fields, body = parse_message(PLAIN)
        for name, value in fields:
            self.assertEqual(c.step(b"L", name + b"\0" + value + b"\0")[0], b"c")
        self.assertEqual(c.step(b"N")[0], b"c")
        self.assertEqual(c.step(b"B", body)[0], b"c")
        code, inserted = c.step(b"E")
        self.assertEqual(inserted, [])
        self.assertEqual(code, b"y")  # a reply code of our own, with a text saying why
        self.assertTrue(c.last_reply.startswith(b"451 4.7.1 DKIM signing is temporarily "
                                                b"unavailable"), c.last_reply)

    def test_daemon_hung_times_out(self):
        """A daemon that stops answering gets a 451 after the milter's 10 s timeout."""
        self.start()
        self.assert_signed()  # leaves a pooled connection to the daemon
        self.w.daemon.send_signal(signal.SIGSTOP)
        try:
            c = self.client()
            c.connect()
            c.mail()
            self.send_and_expect_tempfail(c)  # the client's 60 s socket timeout guards a hang
        finally:
            self.w.daemon.send_signal(signal.SIGCONT)
        self.assert_signed()
        self.assertRegex(self.milter_log(), r"answering 451 .*did not answer within 10000 ms")

    def test_daemon_down_on_error_accept(self):
        """on_error = accept: the message goes on unsigned, and the log says so."""
        self.start("on_error = accept\n", start_daemon=False)
        r, out = self.sign()
        self.assertEqual((r, out), (b"a", None))
        self.w.start()
        self.assert_signed()
        self.assertIn("passing the message on unsigned (on_error = accept)", self.milter_log())

    def test_many_connections_at_once(self):
        """Concurrent SMTP sessions each get their signatures (pool of daemon connections)."""
        self.start()
        results, errors = [], []

        def one(i):
            try:
                msg = PLAIN.replace(b"Subject: direct", b"Subject: parallel %d" % i)
                c = MilterClient(self.msock)
                c.connect()
                c.mail()
                r, ins = c.message(*parse_message(msg))
                c.close()
                results.append((r, signed_message(msg, ins, c.leadspc)))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 40)
        for r, out in results[:5]:
            self.assertEqual(r, b"c")
            self.w.verify(out, min_sigs=2)
        self.assertTrue(all(r == b"c" and out.count(b"DKIM-Signature:") == 2
                            for r, out in results))


class MilterCommandLine(EnvTestCase):
    def milter(self, *args, check=None):
        return self.e.run([prog("dkimkeep-milter")] + list(args), check=check, timeout=60)

    def test_help_version_usage(self):
        out = self.milter("--help", check=EX_OK).stdout.decode()
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "-p SOCKET",
                        "on_error", "internal_hosts"):
            self.assertIn(section, out)
        self.assertEqual(self.milter("-h", check=EX_OK).stdout.decode(), out)
        self.assertRegex(self.milter("--version", check=EX_OK).stdout.decode(),
                         r"^dkimkeep-milter \d+\.\d+")
        for bad in (["--bogus"], ["-p"], ["extra"]):
            cp = self.milter(*bad, check=EX_USAGE)
            self.assertIn(b"--help", cp.stderr)

    def test_bad_config(self):
        conf = self.e.write_config("[milter]\nsign = sometimes\n")
        cp = self.milter("-c", conf, "-f", check=EX_CONFIG)
        self.assertRegex(cp.stderr.decode(), r"dkimkeep\.conf:2")
        cp = self.milter("-c", self.e.path("missing.conf"), "-f", check=EX_CONFIG)
        self.assertIn(b"missing.conf", cp.stderr)
        conf = self.e.write_config("[milter]\nsocket = tcp:25\n")
        self.milter("-c", conf, "-f", check=EX_CONFIG)
        conf = self.e.write_config("[milter]\n")
        self.milter("-c", conf, "-f", "-p", "bogus:thing", check=EX_USAGE)

    def test_socket_in_use_or_not_a_socket(self):
        conf = self.e.write_config("[milter]\n")
        sock = self.e.path("m.sock")
        first = self.e.spawn([prog("dkimkeep-milter"), "-c", conf, "-f", "-p", sock])
        wait_listening(sock)
        self.assertEqual(stat_mode(sock) & 0o777, 0o770)
        cp = self.milter("-c", conf, "-f", "-p", sock, check=69)
        self.assertIn(b"in use", cp.stderr)
        first.send_signal(signal.SIGTERM)
        self.assertEqual(first.wait(timeout=30), 0)
        # a stale socket (milter killed) is replaced
        second = self.e.spawn([prog("dkimkeep-milter"), "-c", conf, "-f", "-p", sock])
        wait_listening(sock)
        second.kill()
        second.wait(timeout=30)
        self.assertTrue(os.path.exists(sock))
        third = self.e.spawn([prog("dkimkeep-milter"), "-c", conf, "-f", "-p", sock])
        wait_listening(sock)
        self.assertIsNone(third.poll())
        third.send_signal(signal.SIGTERM)
        self.assertEqual(third.wait(timeout=30), 0)
        # a regular file in the way is not touched
        plain = self.e.write("not-a-socket", "keep me")
        cp = self.milter("-c", conf, "-f", "-p", "unix:" + plain, check=69)
        self.assertIn(b"not a socket", cp.stderr)
        with open(plain) as f:
            self.assertEqual(f.read(), "keep me")


def wait_listening(path, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    raise AssertionError(f"nothing listens on {path}")


def stat_mode(path):
    return os.stat(path).st_mode


if __name__ == "__main__":
    unittest.main(verbosity=2)
