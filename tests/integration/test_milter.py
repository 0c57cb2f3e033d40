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
import re
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import EnvTestCase, prog, EX_OK, EX_USAGE, EX_CONFIG  # noqa: E402
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
        end = time.time() + 30
        while not listening_on(self.port):
            if time.time() > end:
                raise AssertionError(f"postfix smtpd never listened on {self.port}\n"
                                     + self.maillog())
            time.sleep(0.1)

    def stop(self):
        if self.running:
            self.run(POSTFIX, "-c", self.conf, "stop", check=None)
            self.running = False


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
        self.msock_dir = self.e.path("milter")
        os.mkdir(self.msock_dir)
        self.msock = os.path.join(self.msock_dir, "milter.sock")
        self.milter = self.start_milter()
        self.pf = PrivatePostfix(self.e, f"unix:{self.msock}", self.sink.port)
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
        """Stop the milter and return what it logged."""
        self.milter.send_signal(signal.SIGTERM)
        try:
            self.milter.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.milter.kill()
            self.milter.wait()
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

    def test_unsignable_mail_passes_unsigned(self):
        """No From, or a domain the daemon does not sign for: delivered unsigned, logged."""
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
