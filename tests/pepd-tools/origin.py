#!/usr/bin/env python3
"""Test origin for pepd: HTTP/1.1, optionally TLS, on loopback only.

  origin.py --port 0 --portfile F [--tls CERT KEY] [--dir D]

Paths: /            "hello from origin"
       /page        a 1 KiB page (benchmark)
       /file/NAME   bytes of D/NAME
       /echo        the request body, byte for byte (any method)
       /redirect?to=URL   302 to URL
       /status/N    status N
       /slow/MS     answer after MS milliseconds
       /headers     the request headers as JSON
       /gzip        a gzip-encoded body ("hello gzip" decoded)
       /hop         hop-by-hop response headers plus X-Kept
       /path...     the request target as the origin saw it (any path
                    starting with /path)
       /raw/NAME    a hand-written response (RAW below): bare CR, obs-fold,
                    chunked trailers, NUL in a header value

  --log F appends "METHOD TARGET" per request to F; --host :: listens on
  every IPv6 and IPv4 address.
"""
import argparse
import gzip
import json
import os
import socket
import socketserver
import ssl
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = (b"<!doctype html><title>pep</title>" + b"x" * 990 + b"\n")[:1024]
RAW = {
    "bare-cr": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
               b"X-Evil: a\rInjected: yes\r\nX-Ok: 1\r\n\r\nhi\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                b"X-Fold: a\r\n  b\r\n\tc\r\nX-Ok: 1\r\n\r\nhi\n",
    "trailers": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                b"Trailer: X-Trailer\r\nX-Ok: 1\r\n\r\n"
                b"3\r\nhi\n\r\n0\r\nX-Trailer: t\r\n\r\n",
    "nul": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
           b"X-Nul: a\x00b\r\nX-Ok: 1\r\n\r\nhi\n",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pep-origin"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def send(self, code, body, ctype="text/plain", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        p = u.path
        data = self.body()
        if self.server.log:
            with open(self.server.log, "a") as f:
                f.write("%s %s\n" % (self.command, self.path))
        if p.startswith("/raw/") and p[5:] in RAW:
            self.close_connection = True
            self.wfile.write(RAW[p[5:]])
            return None
        if p.startswith("/path"):
            return self.send(200, self.path.encode("latin-1"))
        if p == "/echo":
            return self.send(200, data, "application/octet-stream",
                             [("X-Method", self.command)])
        if p == "/page":
            return self.send(200, PAGE, "text/html")
        if p.startswith("/file/"):
            name = os.path.basename(p[6:])
            with open(os.path.join(self.server.dir, name), "rb") as f:
                return self.send(200, f.read(), "application/octet-stream")
        if p == "/redirect":
            to = urllib.parse.parse_qs(u.query).get("to", ["/"])[0]
            return self.send(302, b"moved\n", extra=[("Location", to)])
        if p.startswith("/status/"):
            return self.send(int(p[8:]), b"status\n")
        if p.startswith("/slow/"):
            time.sleep(int(p[6:]) / 1000.0)
            return self.send(200, b"slow\n")
        if p == "/headers":
            h = [[k, v] for k, v in self.headers.items()]
            return self.send(200, json.dumps(h).encode(), "application/json")
        if p == "/gzip":
            return self.send(200, gzip.compress(b"hello gzip"), "text/plain",
                             [("Content-Encoding", "gzip")])
        if p == "/hop":
            return self.send(200, b"hop\n", extra=[
                ("Keep-Alive", "timeout=5"), ("Proxy-Authenticate", "Basic"),
                ("X-Kept", "yes")])
        return self.send(200, b"hello from origin\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any
    do_HEAD = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048
    allow_reuse_address = True


class Server6(Server):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--portfile")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--dir", default=".")
    ap.add_argument("--log")
    a = ap.parse_args()
    srv = (Server6 if ":" in a.host else Server)((a.host, a.port), Handler)
    srv.dir = a.dir
    srv.log = a.log
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    port = srv.server_address[1]
    if a.portfile:
        with open(a.portfile + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.rename(a.portfile + ".tmp", a.portfile)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
