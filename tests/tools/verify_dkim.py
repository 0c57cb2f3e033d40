#!/usr/bin/python3
"""Verify every DKIM-Signature of a message with dkimpy, offline.

usage: verify_dkim.py --records RECORDS.json [--quiet] < message

RECORDS.json is what "dkimkeep key dns --json" prints: a list of
{name, type, value, state}.  DNS lookups are answered from it, so no network
is needed.  Exit 0 only when the message carries at least one signature and
every signature verifies.  dkimpy is an independent implementation: this is
how the tests and the quickstart check what dkimkeep signed.
"""
import argparse
import json
import sys

import dkim


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", required=True)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--min", type=int, default=1, help="signatures required")
    a = ap.parse_args()
    with open(a.records) as f:
        recs = json.load(f)
    table = {}
    for r in recs:
        table.setdefault(r["name"].rstrip(".").lower(), []).append(r["value"])

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        vals = table.get(name.rstrip(".").lower())
        return vals[0].encode() if vals else None

    msg = sys.stdin.buffer.read()
    d = dkim.DKIM(msg)
    sigs = [h for h in d.headers if h[0].lower() == b"dkim-signature"]
    if len(sigs) < a.min:
        print(f"FAIL: {len(sigs)} DKIM-Signature header(s), wanted at least {a.min}")
        return 1
    ok = True
    for i in range(len(sigs)):
        v = dkim.DKIM(msg)
        good = v.verify(idx=i, dnsfunc=dnsfunc)
        tags = dkim.util.parse_tag_value(sigs[i][1])
        what = f"{tags.get(b'a', b'?').decode()} s={tags.get(b's', b'?').decode()} d={tags.get(b'd', b'?').decode()}"
        if not a.quiet or not good:
            print(f"{'pass' if good else 'FAIL'}: {what}")
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
