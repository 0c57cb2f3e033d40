#!/usr/bin/env python3
"""Writes the seed corpora in corpus/<target>/ that are built rather than
copied: wire frames (requests for fuzz_frames, responses for
fuzz_response), metadata records, base64 strings and config snippets.
Messages for fuzz_headers and fuzz_body come from tests/data (ci/fuzz
passes those directories too).  Run it again after changing the protocol."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from daemon_harness import pb_field, frame, sign_request  # noqa: E402

MSG = (b"From: Joe <joe@example.com>\r\nTo: a@example.net\r\nSubject: hi\r\n"
       b"Date: Mon, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\n")


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frames():
    put("frames", "sign-body", frame(sign_request(1, MSG, body=b"hello\r\n")))
    put("frames", "sign-domain-algs", frame(sign_request(2, MSG, domain="Example.COM",
                                                         algs=(1, 2), timestamp=1700000000)))
    bh = pb_field(1, "example.com") + pb_field(2, "s2026") + pb_field(4, "joe@example.com") \
        + pb_field(6, 3600) + pb_field(7, "from") + pb_field(7, "subject") \
        + pb_field(8, MSG) + pb_field(9, b"\x01" * 32) + pb_field(11, 1) + pb_field(12, 2) \
        + pb_field(13, "<1@example.com>")
    put("frames", "sign-bodyhash", frame(pb_field(1, 3) + pb_field(2, bh)))
    put("frames", "status", frame(pb_field(1, 4) + pb_field(3, b"")))
    put("frames", "pipelined", frame(sign_request(5, MSG)) + frame(pb_field(1, 6) + pb_field(3, b""))
        + frame(sign_request(7, b"From: x@y.z\n", algs=(2, 2))))
    put("frames", "empty-frame", frame(b""))
    put("frames", "too-long", struct.pack(">I", 2 * 1024 * 1024) + b"\x08\x01")


def responses():
    sig = pb_field(1, "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1; b=AAAA") \
        + pb_field(2, 1) + pb_field(3, "s1") + pb_field(4, "primary") \
        + pb_field(5, "0011223344556677") + pb_field(6, "dk-primary")
    sr = pb_field(1, sig) + pb_field(1, sig) + pb_field(2, "example.com")
    ok = pb_field(1, 1) + pb_field(2, 1) + pb_field(4, sr)
    err = pb_field(1, 2) + pb_field(2, 7) + pb_field(3, "the daemon is busy; retry shortly")
    put("response", "sign-ok", b"\x00" + frame(ok))
    put("response", "sign-two", b"\x00" + frame(err) + frame(ok))
    put("response", "sign-ok-nosig", b"\x00" + frame(pb_field(1, 1) + pb_field(2, 1)
                                                     + pb_field(4, pb_field(2, "x"))))
    tok = pb_field(1, "primary") + pb_field(2, "dk-primary") + pb_field(3, 1) \
        + pb_field(4, 1700000000) + pb_field(5, "") + pb_field(6, 0)
    ring = pb_field(1, "example.com") + pb_field(2, 2) + pb_field(3, "backup") \
        + pb_field(4, "s1") + pb_field(5, "00ff")
    req = pb_field(1, "OK") + pb_field(2, 12)
    st = pb_field(1, "0.1.0") + pb_field(2, 1700000000) + pb_field(3, 2) + pb_field(4, 0) \
        + pb_field(5, 256) + pb_field(6, 1) + pb_field(7, tok) + pb_field(8, ring) \
        + pb_field(9, req)
    put("response", "status", b"\x01" + frame(pb_field(1, 1) + pb_field(2, 1) + pb_field(5, st)))
    put("response", "status-refused", b"\x01" + frame(pb_field(1, 1) + pb_field(2, 11)
                                                      + pb_field(3, "internal")))


def meta():
    rec = (b"v=1\ndomain=example.com\nselector=s202611-rsa\nalg=rsa-sha256\nslot=primary\n"
           b"state=pending\ncreated=2026-11-24T23:50:58Z\nchanged=2026-11-24T23:50:58Z\nrev=0\n")
    put("meta", "record", rec)
    put("meta", "record-unix-times", rec.replace(b"2026-11-24T23:50:58Z", b"1795564258")
        .replace(b"rev=0", b"rev=12\nfuture_field=x"))
    put("meta", "standby-ed25519", rec.replace(b"rsa-sha256", b"ed25519-sha256")
        .replace(b"primary", b"backup").replace(b"pending", b"standby"))


def b64():
    put("b64", "plain", b"SGVsbG8sIHdvcmxkIQ==")
    put("b64", "folded", b"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\r\n\tMIIBCgKCAQEAx y z=")
    put("b64", "pad1", b"YWI=")
    put("b64", "bad", b"YW=I")


def config():
    put("config", "domain", b"[domain example.com]\nalgorithms = rsa-sha256, ed25519-sha256\n"
        b"primary = primary\nbackup = backup\nheaders = from:to:subject\n"
        b"oversign = from\ncanonicalization = relaxed/simple\nrotate_every = 30d\n")
    put("config", "full", b"""[daemon]
socket = sign.sock
socket_mode = 0660
workers = 4
queue = 100
audit_log = /var/log/dkimkeep/audit.jsonl
audit_fail = open
sign_timeout_ms = 500
health_interval = 10s

[domain Example.org]
algorithms =
    rsa-sha256
    ed25519-sha256
primary = backup
selector_template = s{date:%Y%m%d}-{alg}
rsa_bits = 3072
dns_publish = manual

[client postfix]
uid = 0
gid = 0
domains = example.org, *.example.org
rate = 500/s

[dns]
server = [::1]:5353
resolver = 127.0.0.1

[milter]
socket = inet:8891@127.0.0.1
sign = authenticated
internal_hosts = 10.0.0.0/8, ::1/128
on_error = accept
""")
    put("config", "errors", b"[domain x]\nalgorithms = rsa-sha1\n")


def audit_json():
    put("audit_json", "sign", b'{"v":1,"seq":15,"time":"2026-11-25T00:24:22.935716Z","event":"sign",'
        b'"outcome":"ok","client":"postfix","uid":101,"gid":104,"pid":27272,"req":1,'
        b'"domain":"example.com","sigs":[{"alg":"rsa-sha256","selector":"s202611-rsa",'
        b'"slot":"primary","key_id":"8bfd3eda5a375cb4","token":"dk-primary"}],'
        b'"bh":"Ck5SoRNWUpSR4X0COv7R5ub2pUTtl6xz4dTFz++ji4M=","mid":"5184b633",'
        b'"prev":"8bde992f5987e3b9f563cac4fa143f1fb3cd01da4b6539cbc548c12da611ea91"}')
    put("audit_json", "escapes", b'{"v":1,"event":"daemon.reload","outcome":"failed",'
        b'"error":"bad \\"x\\" \\u0041\\n","list":[1,2,[true,false,null]],"n":-3}')


def milter_msg():
    put("milter_msg", "plain", b"\x00From\x00Joe <joe@example.com>\x00To\x00a@example.net\x00"
        b"Subject\x00hi\x00\x00body line\r\n\r\n")
    put("milter_msg", "leadspc-folded", b"\x01From\x00 x@example.com\x00Subject\x00 a\n\tb\x00"
        b"X-Empty\x00\x00\x00")


if __name__ == "__main__":
    frames()
    responses()
    meta()
    b64()
    config()
    audit_json()
    milter_msg()
