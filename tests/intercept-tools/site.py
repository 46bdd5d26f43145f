#!/usr/bin/env python3
"""The web the intercept tests browse: several origins told apart by Host
(the test maps each name to its own 127.0.0.x), on one port.

  site.py --port 80 --dir D --log F [--portfile P]

Every request is logged to F as a JSON line (peer, host, method, path,
body length, upgrade), so a test can see what reached the origins.
Fixtures written to D at start (fixed seed): blob.bin (300 KiB, every byte
value), big.png (a 5 MiB PNG of noise); an upload lands in D/upload.bin.

www.a.test   /          the main page: CSS, image, script (cdn.b.test), XHR,
                        a CORS fetch (api.c.test), an iframe (frame.e.test),
                        a dedicated worker; #result shows what it computed
             /data.json /worker.json /landed
             /redirect?to=URL      302 to URL (also on cdn.b.test)
             /cors      preflighted PUTs: api.c.test/cors-ok allows, /cors-no not
             /upload    fetches blob.bin, posts it as a file (multipart)
             /upload-sink          stores the file part, shows size and sha256
             /big       big.png as an image and through fetch (FNV-1a)
             /ws        opens ws://www.a.test/ws-echo (a real echo endpoint)
             /data      data: image and data: fetch
             /popup     window.open(http://cdn.b.test/popup-page)
             /bench?n=N a page with N images (bench-intercept)
localhost    /sw        a secure context (http://localhost): service workers?
             /sw.js /from-sw
cdn.b.test   /style.css /img.png /app.js /blob.bin /big.png /popup-page /i/N.png
api.c.test   /value (CORS), /cors-ok, /cors-no
frame.e.test /frame /inner.json
"""
import argparse
import base64
import hashlib
import json
import os
import random
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

A = "http://www.a.test"
B = "http://cdn.b.test"
C = "http://api.c.test"
E = "http://frame.e.test"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def png(w, h, rows):
    """A PNG of w x h RGB pixels from rows (bytes per row), stored."""
    def chunk(t, d):
        return (struct.pack(">I", len(d)) + t + d +
                struct.pack(">I", zlib.crc32(t + d) & 0xffffffff))
    raw = b"".join(b"\0" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b""))


def fixtures(d):
    rnd = random.Random(11)
    blob = bytes(range(256)) * 4 + rnd.randbytes(300 * 1024 - 1024)
    big_w, big_h = 1024, 1706
    big = png(big_w, big_h, [rnd.randbytes(big_w * 3) for _ in range(big_h)])
    small = png(64, 32, [bytes([200, 30, 30]) * 64] * 32)
    dot = png(1, 1, [b"\x10\x20\x30"])
    for name, data in (("blob.bin", blob), ("big.png", big)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return {"blob": blob, "big": big, "small": small, "dot": dot}


MAIN = """<!doctype html><meta charset="utf-8"><title>pexi main</title>
<link rel="stylesheet" href="%(B)s/style.css">
<p id="css">styled</p><img id="img" src="%(B)s/img.png">
<iframe id="frame" src="%(E)s/frame"></iframe>
<p id="result">pending</p>
<script src="%(B)s/app.js"></script>
"""

APP = """const got = {};
function done() {
  const need = ['xhr', 'fetch', 'frame', 'worker', 'img'];
  if (!need.every(k => k in got)) return;
  const css = getComputedStyle(document.getElementById('css')).color;
  document.getElementById('result').textContent =
    `xhr=${got.xhr} fetch=${got.fetch} frame=${got.frame} ` +
    `worker=${got.worker} sum=${got.xhr + got.fetch + got.frame +
    got.worker} img=${got.img} css=${css}`;
  const p = document.createElement('p'); p.id = 'done';
  document.body.append(p);
}
const x = new XMLHttpRequest();
x.open('GET', '/data.json');
x.onload = () => { got.xhr = JSON.parse(x.responseText).n; done(); };
x.send();
fetch('%(C)s/value').then(r => r.json())
  .then(j => { got.fetch = j.n; done(); });
addEventListener('message', e => {
  if (e.origin === '%(E)s') { got.frame = e.data; done(); } });
const w = new Worker(URL.createObjectURL(new Blob([
  "fetch('%(A)s/worker.json').then(r => r.json())" +
  ".then(j => postMessage(j.n))"])));
w.onmessage = e => { got.worker = e.data; done(); };
const img = document.getElementById('img');
const seen = () => { got.img = img.naturalWidth + 'x' + img.naturalHeight;
  done(); };
if (img.complete) seen(); else img.onload = img.onerror = seen;
"""

FRAME = """<!doctype html><title>frame</title><script>
fetch('/inner.json').then(r => r.json())
  .then(j => parent.postMessage(j.n, '%(A)s'));
</script>"""

CORS = """<!doctype html><meta charset="utf-8"><title>pexi cors</title>
<p id="result">pending</p><script>
const put = (u) => fetch(u, {method: 'PUT', body: '{"v": 1}', headers:
  {'Content-Type': 'application/json', 'X-Custom': 'pexi'}});
Promise.all([
  put('%(C)s/cors-ok').then(r => r.json()).then(j => 'ok=' + j.v,
    e => 'ok=blocked'),
  put('%(C)s/cors-no').then(r => 'no=' + r.status, e => 'no=blocked'),
]).then(a => {
  document.getElementById('result').textContent = a.join(' ');
  const p = document.createElement('p'); p.id = 'done';
  document.body.append(p);
});
</script>"""

UPLOAD = """<!doctype html><meta charset="utf-8"><title>pexi upload</title>
<form id="f" method="post" action="/upload-sink"
 enctype="multipart/form-data"><input type="text" name="note" value="n&eacute;">
<input id="file" type="file" name="file"></form><script>
fetch('%(B)s/blob.bin').then(r => r.arrayBuffer()).then(buf => {
  const dt = new DataTransfer();
  dt.items.add(new File([buf], 'blob.bin',
    {type: 'application/octet-stream'}));
  document.getElementById('file').files = dt.files;
  document.getElementById('f').submit();
});
</script>"""

BIG = """<!doctype html><meta charset="utf-8"><title>pexi big</title>
<img id="big" src="%(B)s/big.png"><p id="result">pending</p><script>
function fnv(a) {
  let h = 0x811c9dc5;
  for (let i = 0; i < a.length; i++) h = Math.imul(h ^ a[i], 0x01000193);
  return (h >>> 0).toString(16);
}
const img = document.getElementById('big');
const loaded = new Promise(r => {
  if (img.complete) r(); else img.onload = img.onerror = r; });
Promise.all([fetch('%(B)s/big.png').then(r => r.arrayBuffer()), loaded])
  .then(([b]) => {
    const a = new Uint8Array(b);
    document.getElementById('result').textContent =
      `big=${img.naturalWidth}x${img.naturalHeight} bytes=${a.length} ` +
      `fnv=${fnv(a)}`;
    const p = document.createElement('p'); p.id = 'done';
    document.body.append(p);
  });
</script>"""

WS = """<!doctype html><meta charset="utf-8"><title>pexi ws</title>
<p id="result">pending</p><script>
function end(s) {
  if (document.getElementById('done')) return;
  document.getElementById('result').textContent = 'ws=' + s;
  const p = document.createElement('p'); p.id = 'done';
  document.body.append(p);
}
try {
  const ws = new WebSocket('ws://www.a.test/ws-echo');
  ws.onopen = () => end('open');
  ws.onerror = () => end('error');
  ws.onclose = () => end('closed');
} catch (e) { end('throw'); }
setTimeout(() => end('timeout'), 5000);
</script>"""

DATA = """<!doctype html><meta charset="utf-8"><title>pexi data</title>
<img id="dot" src="data:image/png;base64,%(dot)s"><p id="result">pending</p>
<script>
const img = document.getElementById('dot');
const loaded = new Promise(r => {
  if (img.complete) r(); else img.onload = img.onerror = r; });
Promise.all([fetch('data:text/plain,hello-data').then(r => r.text()),
  loaded]).then(([t]) => {
  document.getElementById('result').textContent =
    `data=${t} img=${img.naturalWidth}x${img.naturalHeight}`;
  const p = document.createElement('p'); p.id = 'done';
  document.body.append(p);
});
</script>"""

POPUP = """<!doctype html><title>pexi popup</title><p id="result">pending</p>
<script>
const w = window.open('%(B)s/popup-page', 'pexipopup');
document.getElementById('result').textContent = 'opened=' + Boolean(w);
</script><p id="done"></p>"""

POPUP_PAGE = """<!doctype html><title>pexi popup page</title>
<img src="/img.png?from=popup"><p>popup</p>"""

SW = """<!doctype html><title>pexi sw</title><p id="result">pending</p>
<script>
function end(s) {
  if (document.getElementById('done')) return;
  document.getElementById('result').textContent = 'sw=' + s;
  const p = document.createElement('p'); p.id = 'done';
  document.body.append(p);
}
if (!('serviceWorker' in navigator)) end('absent');
else navigator.serviceWorker.register('/sw.js').then(
  r => end('registered'), e => end('error'));
setTimeout(() => end('timeout'), 5000);
</script>"""

SW_JS = """fetch('/from-sw');
self.addEventListener('fetch', e => {});"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pexi-site"

    def log_message(self, fmt, *args):
        pass

    def note(self, body_len):
        rec = {"t": round(time.time(), 3), "peer": self.client_address[0],
               "host": self.headers.get("Host", ""), "method": self.command,
               "path": self.path, "body": body_len,
               "upgrade": self.headers.get("Upgrade", "")}
        self.server.log(rec)

    def send(self, code, body, ctype="text/html; charset=utf-8", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "").encode()
        acc = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", acc)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        try:
            while self.connection.recv(4096):
                pass
        except OSError:
            pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.note(len(body))
        host = self.headers.get("Host", "").split(":")[0]
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        route = getattr(self, "r_" + host.split(".")[0], None)
        if route is None:
            return self.send(404, "no such host\n", "text/plain")
        return route(u.path, q, body)

    do_GET = do_POST = do_PUT = do_HEAD = do_OPTIONS = handle_any

    def common(self, p, q):
        if p == "/redirect":
            return self.send(302, "moved\n", "text/plain",
                             [("Location", q.get("to", ["/"])[0])])
        return self.send(404, "not found\n", "text/plain")

    def r_www(self, p, q, body):
        s = self.server
        v = {"A": A, "B": B, "C": C, "E": E}
        pages = {"/": MAIN % v, "/cors": CORS % v, "/upload": UPLOAD % v,
                 "/big": BIG % v, "/ws": WS, "/popup": POPUP % v,
                 "/data": DATA % {"dot": base64.b64encode(s.fx["dot"])
                                  .decode()},
                 "/landed": "<!doctype html><title>landed</title><p>landed"}
        if p in pages:
            return self.send(200, pages[p])
        if p == "/data.json":
            return self.send(200, '{"n": 17}', "application/json")
        if p == "/worker.json":
            return self.send(200, '{"n": 4}', "application/json")
        if p == "/ws-echo" and "websocket" in \
                self.headers.get("Upgrade", "").lower():
            return self.websocket()
        if p == "/upload-sink" and self.command == "POST":
            return self.upload_sink(body)
        if p == "/bench":
            n = int(q.get("n", ["50"])[0])
            imgs = "".join('<img src="%s/i/%d.png">' % (B, i)
                           for i in range(n))
            return self.send(200, "<!doctype html><title>bench</title>" +
                             imgs)
        return self.common(p, q)

    def upload_sink(self, body):
        ctype = self.headers.get("Content-Type", "")
        bnd = ctype.split("boundary=")[-1].strip('"').encode()
        got = None
        for part in body.split(b"--" + bnd):
            head, sep, data = part.partition(b"\r\n\r\n")
            if sep and b'name="file"' in head:
                got = data[:-2] if data.endswith(b"\r\n") else data
        if got is None:
            return self.send(400, "<title>no file</title>no file part")
        with open(os.path.join(self.server.dir, "upload.bin"), "wb") as f:
            f.write(got)
        return self.send(200, '<!doctype html><title>uploaded</title>'
                         '<p id="uploaded">size=%d sha256=%s</p>' %
                         (len(got), hashlib.sha256(got).hexdigest()))

    def r_cdn(self, p, q, body):
        fx = self.server.fx
        anyone = [("Access-Control-Allow-Origin", "*")]
        if p == "/style.css":
            return self.send(200, "#css { color: rgb(1, 2, 3); }", "text/css")
        if p == "/img.png" or p.startswith("/i/"):
            return self.send(200, fx["small"], "image/png")
        if p == "/app.js":
            return self.send(200, APP % {"A": A, "C": C, "E": E},
                             "text/javascript")
        if p == "/blob.bin":
            return self.send(200, fx["blob"], "application/octet-stream",
                             anyone)
        if p == "/big.png":
            return self.send(200, fx["big"], "image/png", anyone)
        if p == "/popup-page":
            return self.send(200, POPUP_PAGE)
        return self.common(p, q)

    def r_api(self, p, q, body):
        allow = [("Access-Control-Allow-Origin", A)]
        if p == "/value":
            return self.send(200, '{"n": 25}', "application/json", allow)
        if p == "/cors-ok" and self.command == "OPTIONS":
            return self.send(204, b"", "text/plain", allow + [
                ("Access-Control-Allow-Methods", "PUT"),
                ("Access-Control-Allow-Headers", "content-type, x-custom")])
        if p == "/cors-ok":
            v = json.loads(body or b"{}").get("v")
            return self.send(200, json.dumps({"v": v}), "application/json",
                             allow)
        if p == "/cors-no":
            return self.send(204 if self.command == "OPTIONS" else 200,
                             b"", "text/plain")
        return self.common(p, q)

    def r_frame(self, p, q, body):
        if p == "/frame":
            return self.send(200, FRAME % {"A": A})
        if p == "/inner.json":
            return self.send(200, '{"n": 8}', "application/json")
        return self.common(p, q)

    def r_localhost(self, p, q, body):
        if p == "/sw":
            return self.send(200, SW)
        if p == "/sw.js":
            return self.send(200, SW_JS, "text/javascript")
        if p == "/from-sw":
            return self.send(200, "from-sw", "text/plain")
        return self.common(p, q)

    def r_deny(self, p, q, body):
        return self.send(200, "<title>should never be seen</title>")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def log(self, rec):
        with self.lock:
            self.logf.write(json.dumps(rec) + "\n")
            self.logf.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--portfile")
    a = ap.parse_args()
    srv = Server((a.host, a.port), Handler)
    srv.dir = a.dir
    srv.fx = fixtures(a.dir)
    srv.lock = threading.Lock()
    srv.logf = open(a.log, "a")
    if a.portfile:
        with open(a.portfile + ".tmp", "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.rename(a.portfile + ".tmp", a.portfile)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
