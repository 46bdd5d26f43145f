#!/usr/bin/env python3
"""Where the time of one flow run went, from pep-run start (0 s) to the
first page rendered in the guest and on to pep-run's exit:

  timeline.py --console CONSOLE [--audit AUDIT --t0 T0] [--end SECONDS]
              [--json]

CONSOLE is stamp.py's log (seconds since pep-run started, then the
line); AUDIT pepd's audit log (its "time" is the host's clock, T0 the
Unix time pep-run started at). The marks, each the first line matching:

  kernel    the first kernel line with a printk time "[ 3.29]": the
            kernel started that long before the line arrived (Debian's
            cloud kernel has hvc0 as a module: nothing reaches the
            console before the initramfs loads it)
  init      "OpenRC ... is starting up" (the root's init has started)
  firefox   pexi-boot's "Starting pexi firefox"
  browser   the runner's "browser connected" (Firefox took a session)
  response  pepd's first "answered" audit line
  page      the runner's "visit 0 ...: loaded" (load, then wait_for)
  off       the kernel's "reboot: Power down"

A mark that is missing leaves its stage and the next unknown ("?").
"""
import argparse
import datetime
import json
import re
import sys

MARKS = [
    ("init", re.compile(r"OpenRC .* is starting up|INIT: version")),
    ("firefox", re.compile(r"Starting pexi firefox")),
    ("browser", re.compile(r"pexi-intercept: .*browser connected")),
    ("page", re.compile(r"pexi-intercept: .*visit 0 .*: loaded")),
    ("off", re.compile(r"reboot: Power down")),
]
PRINTK = re.compile(r"^\[\s*(\d+\.\d+)\]")

STAGES = [
    ("firmware + GRUB", None, "kernel"),
    ("kernel + initramfs", "kernel", "init"),
    ("init (OpenRC to pexi-boot)", "init", "firefox"),
    ("Firefox start (to a BiDi session)", "firefox", "browser"),
    ("first response (to pepd's first answer)", "browser", "response"),
    ("page rendered (load, wait_for)", "response", "page"),
]


def marks_of(console):
    m = {}
    with open(console, encoding="utf-8", errors="replace") as f:
        for line in f:
            t, _, text = line.strip().partition(" ")
            try:
                t = float(t)
            except ValueError:
                continue
            k = PRINTK.match(text)
            if k and "kernel" not in m:
                m["kernel"] = max(0.0, t - float(k.group(1)))
            for name, rx in MARKS:
                if name not in m and rx.search(text):
                    m[name] = t
    return m


def first_answer(audit, t0):
    try:
        with open(audit, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                if rec.get("event") != "answered":
                    continue
                when = datetime.datetime.fromisoformat(
                    rec["time"].replace("Z", "+00:00"))
                return when.timestamp() - t0
    except (OSError, ValueError, KeyError):
        pass
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--console", required=True)
    ap.add_argument("--audit")
    ap.add_argument("--t0", type=float)
    ap.add_argument("--end", type=float)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    m = marks_of(a.console)
    if a.audit and a.t0:
        r = first_answer(a.audit, a.t0)
        if r is not None:
            m["response"] = r
    if a.end is not None:
        m["end"] = a.end
    rows = []
    for name, start, stop in STAGES:
        t_a = 0.0 if start is None else m.get(start)
        t_b = m.get(stop)
        d = None if t_a is None or t_b is None else t_b - t_a
        rows.append((name, d))
    first = m.get("page")
    after = (None if first is None or "end" not in m
             else m["end"] - first)
    if a.json:
        print(json.dumps({"marks": m, "stages": dict(rows),
                          "first_page": first, "after_page": after}))
        return 0
    fmt = "  %-42s %8s"
    for name, d in rows:
        print(fmt % (name, "?" if d is None else "%.1f s" % d))
    print(fmt % ("= pep-run start to first page rendered",
                 "?" if first is None else "%.1f s" % first))
    print(fmt % ("then screenshot, poweroff, pep-run exit",
                 "?" if after is None else "%.1f s" % after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
