#!/usr/bin/env python3
"""The demo's web: one page with an allowed and a denied part, served on
one port to every name (told apart by Host), for `make demo`, the flow
test and bench-flow (tests/flow/flow-run.sh runs it in a private network
namespace where these names resolve to 127.0.0.1):

  www.demo.test  /         the page: an image from img.demo.test, a script
                           from tracker.test, its own /app.js, which says
                           in #result what loaded and adds #done
                 /app.js
  img.demo.test  /logo.png a 64x32 PNG
  tracker.test   /track.js would write "RAN" into #tracker (pepd's policy
                           denies tracker.test: it never gets here)

  site.py --port 80 --log FILE [--readyfile FILE]

Every request is logged to FILE as a JSON line (host, method, path).
"""
import argparse
import json
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = """<!doctype html><meta charset="utf-8"><title>pep demo</title>
<link rel="icon" href="data:,">
<style>body { font: 18px sans-serif; margin: 2em; }
img { vertical-align: middle; margin-right: 0.5em; }</style>
<h1>pep demo</h1>
<p>Fetched by pepd on the host for a browser in a VM without a network.</p>
<p><img id="logo" src="http://img.demo.test/logo.png" alt="">
an image from img.demo.test (allowed)</p>
<p id="tracker">a script from tracker.test (denied): did not run</p>
<p id="result">pending</p>
<script src="http://tracker.test/track.js"></script>
<script src="/app.js"></script>
"""

APP = """const img = document.getElementById('logo');
function done() {
  const ran = /RAN/.test(document.getElementById('tracker').textContent);
  document.getElementById('result').textContent =
    'image: ' + (img.naturalWidth ? img.naturalWidth + 'x' +
    img.naturalHeight + ' from img.demo.test' : 'not loaded') +
    '; tracker.test script: ' + (ran ? 'RAN' : 'blocked');
  const p = document.createElement('p');
  p.id = 'done';
  document.body.append(p);
}
if (img.complete) done(); else img.onload = img.onerror = done;
"""

TRACK = """document.getElementById('tracker').textContent =
  'a script from tracker.test (denied): RAN';
"""


def png(w, h, rgb):
    """A w x h PNG of one colour, stored."""
    def chunk(t, d):
        return (struct.pack(">I", len(d)) + t + d +
                struct.pack(">I", zlib.crc32(t + d) & 0xffffffff))
    raw = (b"\0" + bytes(rgb) * w) * h
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


ROUTES = {
    ("www.demo.test", "/"): (PAGE.encode(), "text/html; charset=utf-8"),
    ("www.demo.test", "/app.js"): (APP.encode(), "text/javascript"),
    ("img.demo.test", "/logo.png"): (png(64, 32, (30, 110, 200)),
                                     "image/png"),
    ("tracker.test", "/track.js"): (TRACK.encode(), "text/javascript"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        path = self.path.split("?")[0]
        self.server.log({"host": host, "method": "GET", "path": path})
        body, ctype = ROUTES.get((host, path), (b"not found\n",
                                                "text/plain"))
        self.send_response(200 if (host, path) in ROUTES else 404)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, logf):
        super().__init__(addr, Handler)
        self.logf = logf
        self.lock = threading.Lock()

    def log(self, rec):
        with self.lock:
            self.logf.write(json.dumps(rec) + "\n")
            self.logf.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--log", required=True)
    ap.add_argument("--readyfile")
    a = ap.parse_args()
    with open(a.log, "a") as logf:
        srv = Server(("127.0.0.1", a.port), logf)
        if a.readyfile:
            with open(a.readyfile, "w") as f:
                f.write("ready\n")
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
