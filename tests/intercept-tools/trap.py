#!/usr/bin/env python3
"""Where a browser's direct connections would land: run in the browser's
network namespace, in which the test names resolve to the same 127.0.0.x
as outside but no origin listens. Accepts TCP on the given ports and DNS
queries on UDP 53 and logs each as a JSON line: a connection when it is
accepted, and its first line when data comes (within 60 s); it answers
nothing and closes the connection once data came.

  trap.py --log F --ports 80,443 [--readyfile R]
"""
import argparse
import json
import os
import socket
import sys
import threading
import time

lock = threading.Lock()


def log(f, rec):
    rec["t"] = round(time.time(), 3)
    with lock:
        f.write(json.dumps(rec) + "\n")
        f.flush()


def listener(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(64)
    return ls


def tcp(f, ls):
    port = ls.getsockname()[1]

    def one(c, peer):
        dst = c.getsockname()[0]
        log(f, {"proto": "tcp", "event": "connect", "port": port,
                "peer": peer[0], "dst": dst, "first": ""})
        c.settimeout(60)
        try:
            data = c.recv(4096)
        except OSError:
            data = b""
        if data:
            log(f, {"proto": "tcp", "event": "data", "port": port,
                    "peer": peer[0], "dst": dst, "bytes": len(data),
                    "first": data.split(b"\r\n")[0].decode("latin1")})
        c.close()

    while True:
        c, peer = ls.accept()
        threading.Thread(target=one, args=(c, peer), daemon=True).start()


def dns_name(q):
    labels, i = [], 12
    while i < len(q) and q[i]:
        n = q[i]
        labels.append(q[i + 1:i + 1 + n].decode("latin1"))
        i += 1 + n
    return ".".join(labels)


def udp53(f, s):
    while True:
        q, peer = s.recvfrom(2048)
        log(f, {"proto": "dns", "event": "query", "port": 53,
                "peer": peer[0], "dst": "", "first": dns_name(q)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--ports", default="80,443")
    ap.add_argument("--readyfile")
    a = ap.parse_args()
    f = open(a.log, "a")
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))
    for ls in [listener(int(p)) for p in a.ports.split(",")]:
        threading.Thread(target=tcp, args=(f, ls), daemon=True).start()
    threading.Thread(target=udp53, args=(f, dns), daemon=True).start()
    if a.readyfile:
        open(a.readyfile, "w").close()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
