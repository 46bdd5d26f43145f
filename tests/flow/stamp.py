#!/usr/bin/env python3
"""Timestamp the guest's console as it arrives: pep-run's hvc0 output on
standard input, one line per console line to LOG as "SECONDS LINE"
(seconds since T0, a Unix time with a fraction: when pep-run started),
colour and cursor escapes and carriage returns removed. Lines matching
--show are also printed, as progress, to standard output.

  stamp.py --t0 T0 --log LOG [--show REGEX] [--prefix TEXT]
"""
import argparse
import re
import sys
import time

ESC = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t0", type=float, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--show")
    ap.add_argument("--prefix", default="")
    a = ap.parse_args()
    show = re.compile(a.show) if a.show else None
    with open(a.log, "w", encoding="utf-8") as log:
        for raw in sys.stdin.buffer:
            t = time.time() - a.t0
            line = ESC.sub(b"", raw).replace(b"\r", b"").rstrip(b"\n")
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            log.write("%9.3f %s\n" % (t, text))
            log.flush()
            if show is not None and show.search(text):
                sys.stdout.write("%s[%6.1f s] %s\n" % (a.prefix, t, text))
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
