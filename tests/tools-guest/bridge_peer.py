#!/usr/bin/env python3
"""Test peer and driver for pexi-bridge (tests/cases/pexi_bridge.sh).

  bridge_peer.py serve --unix PATH [--tcp]   upstream test server
  bridge_peer.py suite --bridge 'CMD ...' [--conns N] [--big MIB] [--no-rss]

The server speaks a one-byte command first:
  E          echo everything until EOF, then close
  S <u64 R>  read until EOF, answer "<sha256> <length>\\n" and R pattern
             bytes (a reply that starts only after the client's EOF)
  G <u64 N> <u64 seed>  send N pattern bytes, then close

The suite prints PASS/FAIL/SKIP lines (and "# " notes) for the shell
case to turn into TAP.
"""
import argparse
import asyncio
import hashlib
import os
import random
import resource
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1 << 20


def pattern_chunks(n, seed):
    block = random.Random(seed).randbytes(MIB)
    i = 0
    while n > 0:
        chunk = struct.pack(">Q", i) + block[8:]
        chunk = chunk[:n]
        yield chunk
        n -= len(chunk)
        i += 1


def pattern_sha(n, seed):
    h = hashlib.sha256()
    for c in pattern_chunks(n, seed):
        h.update(c)
    return h.hexdigest()


# --- server -------------------------------------------------------------

async def serve_conn(reader, writer):
    try:
        cmd = await reader.readexactly(1)
        if cmd == b"E":
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        elif cmd == b"S":
            (reply,) = struct.unpack(">Q", await reader.readexactly(8))
            h, n = hashlib.sha256(), 0
            while True:
                data = await reader.read(262144)
                if not data:
                    break
                h.update(data)
                n += len(data)
            writer.write(f"{h.hexdigest()} {n}\n".encode())
            for c in pattern_chunks(reply, n):
                writer.write(c)
                await writer.drain()
        elif cmd == b"G":
            n, seed = struct.unpack(">QQ", await reader.readexactly(16))
            for c in pattern_chunks(n, seed):
                writer.write(c)
                await writer.drain()
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(args):
    srv = await asyncio.start_unix_server(serve_conn, args.unix,
                                          backlog=4096)
    port = 0
    if args.tcp:
        tsrv = await asyncio.start_server(serve_conn, "127.0.0.1", 0,
                                          backlog=4096)
        port = tsrv.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with srv:
        await srv.serve_forever()


# --- driver helpers -------------------------------------------------------

class Suite:
    def __init__(self, args):
        self.args = args
        self.cmd = shlex.split(args.bridge)
        self.tmp = tempfile.mkdtemp(prefix="pexi-")
        self.procs = []
        self.failed = 0

    def result(self, ok, desc):
        print(("PASS " if ok else "FAIL ") + desc, flush=True)
        if not ok:
            self.failed += 1

    def note(self, msg):
        print("# " + msg, flush=True)

    def start_bridge(self, upstream, name, extra=()):
        log = os.path.join(self.tmp, name + ".log")
        f = open(log, "w")
        p = subprocess.Popen(self.cmd + ["--listen", "tcp:127.0.0.1:0",
                                         "--upstream", upstream, *extra],
                             stdout=f, stderr=f)
        f.close()
        p.logpath = log
        self.procs.append(p)
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(log) as lf:
                for line in lf:
                    if "listening on tcp:127.0.0.1:" in line:
                        port = line.split("127.0.0.1:")[1].split(",")[0]
                        p.port = int(port)
                        return p
            if p.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"bridge {name} did not start: {open(log).read()}")

    def log_of(self, p):
        with open(p.logpath) as lf:
            return lf.read()

    def status(self, p, key):
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return -1

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


async def xfer(port, payload, timeout=60):
    """Send payload then EOF; return everything received until EOF."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(payload)
    await w.drain()
    w.write_eof()
    data = await asyncio.wait_for(r.read(), timeout)
    w.close()
    return data


async def echo_many(port, n, size):
    conns = []
    for _ in range(n):
        conns.append(await asyncio.open_connection("127.0.0.1", port))
    payloads = [os.urandom(size) for _ in range(n)]

    async def one(rw, data):
        r, w = rw
        w.write(b"E" + data)
        await w.drain()
        w.write_eof()
        got = await asyncio.wait_for(r.read(), 60)
        w.close()
        return got == data

    res = await asyncio.gather(*(one(c, d) for c, d in zip(conns, payloads)),
                               return_exceptions=True)
    return sum(1 for x in res if x is True)


def stream_upload(port, nbytes):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"S" + struct.pack(">Q", 0))
    h = hashlib.sha256()
    for c in pattern_chunks(nbytes, 7):
        s.sendall(c)
        h.update(c)
    s.shutdown(socket.SHUT_WR)
    reply = b""
    s.settimeout(60)
    while True:
        d = s.recv(65536)
        if not d:
            break
        reply += d
    s.close()
    return reply == f"{h.hexdigest()} {nbytes}\n".encode()


def stream_download(port, nbytes, seed=11):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"G" + struct.pack(">QQ", nbytes, seed))
    s.shutdown(socket.SHUT_WR)
    s.settimeout(60)
    h, n = hashlib.sha256(), 0
    while True:
        d = s.recv(1 << 18)
        if not d:
            break
        h.update(d)
        n += len(d)
    s.close()
    return n == nbytes and h.hexdigest() == pattern_sha(nbytes, seed)


def half_close(port):
    sent = os.urandom(MIB)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"S" + struct.pack(">Q", MIB) + sent)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(30)
    buf = b""
    while True:
        d = s.recv(1 << 18)
        if not d:
            break
        buf += d
    s.close()
    line, _, rest = buf.partition(b"\n")
    want = f"{hashlib.sha256(sent).hexdigest()} {MIB}".encode()
    return line == want and hashlib.sha256(rest).hexdigest() == \
        pattern_sha(MIB, MIB)


def refused_once(port):
    """Connect through a bridge whose upstream refuses: time to EOF/RST."""
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    try:
        s.sendall(b"E hello")
        d = s.recv(100)
        ok = d == b""
    except (ConnectionResetError, BrokenPipeError):
        ok = True
    except socket.timeout:
        ok = False
    s.close()
    return ok, time.time() - t0


# --- the tests --------------------------------------------------------------

def t_concurrent(st, p):
    n, size = st.args.conns, 64 * 1024
    t0 = time.time()
    good = asyncio.run(echo_many(p.port, n, size))
    dt = time.time() - t0
    st.result(good == n, f"{n} concurrent connections x 64 KiB echoed "
              f"byte-exact ({good}/{n}, {dt:.2f} s)")
    hwm = st.status(p, "VmHWM")
    bound = 8 * 1024 + n * 2 * 64     # KiB: baseline + two full buffers
    st.note(f"peak RSS (VmHWM) {hwm} KiB after {n} connections; "
            f"bound {bound} KiB")
    if st.args.no_rss:
        st.note("RSS bound not asserted for this build")
    else:
        st.result(0 < hwm <= bound, f"peak RSS {hwm} KiB <= {bound} KiB")


def t_bulk(st, p):
    nbytes = st.args.big * MIB
    for name, fn in (("client->upstream", stream_upload),
                     ("upstream->client", stream_download)):
        t0 = time.time()
        ok = fn(p.port, nbytes)
        dt = time.time() - t0
        st.result(ok, f"{st.args.big} MiB {name} sha256 byte-exact "
                  f"({nbytes / MIB / max(dt, 1e-6):.0f} MiB/s incl. python)")


def t_backpressure(st, p):
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(b"E")
    time.sleep(0.2)
    before = st.status(p, "VmRSS")
    s.setblocking(False)
    chunk, sent, stalled = os.urandom(65536), bytearray(), 0
    deadline = time.time() + 20
    while time.time() < deadline:
        _, w, _ = select.select([], [s], [], 0.5)
        if not w:
            stalled = 1
            break
        try:
            n = s.send(chunk)
        except BlockingIOError:
            continue
        sent += chunk[:n]
    during = st.status(p, "VmRSS")
    s.setblocking(True)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(30)
    got = bytearray()
    while True:
        d = s.recv(1 << 18)
        if not d:
            break
        got += d
    s.close()
    st.note(f"backpressure: client could push {len(sent) >> 10} KiB "
            f"unread; bridge RSS {before} -> {during} KiB")
    st.result(stalled and got == sent,
              "writer stalls when the reader does not read; all bytes "
              "delivered afterwards")
    if not st.args.no_rss:
        st.result(during - before < 4096,
                  f"RSS grows < 4 MiB under backpressure "
                  f"({during - before} KiB)")


def t_half_close(st, p):
    st.result(half_close(p.port),
              "half-close: client SHUT_WR, upstream's reply after EOF "
              "arrives in full")


def t_tcp_upstream(st, tcpport):
    p = st.start_bridge(f"tcp:127.0.0.1:{tcpport}", "tcpup")
    good = asyncio.run(echo_many(p.port, 20, 65536))
    st.result(good == 20 and stream_download(p.port, 8 * MIB),
              "tcp upstream (non-blocking connect): 20 echoes + 8 MiB")
    p.send_signal(signal.SIGTERM)
    p.wait(10)


def t_refused(st, upstream, name, why):
    p = st.start_bridge(upstream, name)
    worst, good = 0.0, 0
    for _ in range(20):
        ok, dt = refused_once(p.port)
        good += ok
        worst = max(worst, dt)
    alive = p.poll() is None
    warns = sum(1 for ln in st.log_of(p).splitlines() if "upstream " in ln
                and "further failures" in ln)
    st.result(good == 20 and worst < 1.0 and alive,
              f"upstream {why}: client closed promptly 20/20 "
              f"(worst {worst * 1000:.0f} ms), bridge still running")
    st.result(warns == 1, f"upstream {why}: one warning, not one per "
              f"connection ({warns})")
    p.send_signal(signal.SIGTERM)
    p.wait(10)


def backlog_server(path, hold, stop):
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    time.sleep(hold)
    ls.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        c.settimeout(5)
        data = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            data += d
        c.sendall(data)
        c.close()
    ls.close()


def t_backlog(st):
    path = os.path.join(st.tmp, "backlog.sock")
    stop = threading.Event()
    th = threading.Thread(target=backlog_server, args=(path, 0.3, stop))
    th.start()
    time.sleep(0.05)
    p = st.start_bridge(f"unix:{path}", "backlog")

    async def run():
        return await asyncio.gather(*(xfer(p.port, b"ping%d" % i, 10)
                                      for i in range(8)),
                                    return_exceptions=True)
    res = asyncio.run(run())
    stop.set()
    th.join()
    good = sum(1 for i, r in enumerate(res) if r == b"ping%d" % i)
    st.result(good == 8, f"unix upstream backlog full: connects retried, "
              f"8/8 served ({good})")
    p.send_signal(signal.SIGTERM)
    p.wait(10)


def t_signal(st, p, sig, nidle):
    idle = [socket.create_connection(("127.0.0.1", p.port))
            for _ in range(nidle)]
    for s in idle:
        s.sendall(b"E")
    time.sleep(0.2)
    t0 = time.time()
    p.send_signal(sig)
    try:
        rc = p.wait(5)
    except subprocess.TimeoutExpired:
        rc = None
    dt = time.time() - t0
    eofs = 0
    for s in idle:
        s.settimeout(2)
        try:
            eofs += s.recv(10) == b""
        except OSError:
            eofs += 1
        s.close()
    name = signal.Signals(sig).name
    st.result(rc == 0 and dt < 2.0 and eofs == nidle,
              f"{name} with {nidle} open connections: exit {rc} in "
              f"{dt * 1000:.0f} ms, clients closed {eofs}/{nidle}")
    if rc != 0:
        st.note(st.log_of(p)[-2000:])


def t_vsock(st):
    try:
        ls = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        ls.bind((1, 0xFFFFFFFF))        # VMADDR_CID_LOCAL, any port
    except (OSError, AttributeError) as e:
        print(f"SKIP vsock upstream: no vsock loopback here ({e}); not "
              "connecting to CID 2, which is this machine's own host",
              flush=True)
        return
    ls.listen(16)
    port = ls.getsockname()[1]

    def srv():
        c, _ = ls.accept()
        data = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            data += d
        c.sendall(data)
        c.close()
    th = threading.Thread(target=srv, daemon=True)
    th.start()
    p = st.start_bridge(f"vsock:1:{port}", "vsock")
    data = os.urandom(MIB)
    got = asyncio.run(xfer(p.port, data, 20))
    st.result(got == data, "vsock upstream (loopback CID 1): 1 MiB echoed")
    p.send_signal(signal.SIGTERM)
    p.wait(10)
    ls.close()


def suite(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    st = Suite(args)
    sock = os.path.join(st.tmp, "up.sock")
    server = subprocess.Popen([sys.executable, __file__, "serve", "--unix",
                               sock, "--tcp"], stdout=subprocess.PIPE)
    st.procs.append(server)
    tcpport = int(server.stdout.readline().split()[1])
    try:
        p = st.start_bridge(f"unix:{sock}", "main")
        t_concurrent(st, p)
        t_bulk(st, p)
        t_half_close(st, p)
        t_backpressure(st, p)
        t_tcp_upstream(st, tcpport)
        t_backlog(st)
        stale = os.path.join(st.tmp, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(stale)
        s.close()
        t_refused(st, f"unix:{stale}", "stale", "refusing (unix)")
        t_refused(st, f"unix:{st.tmp}/absent.sock", "absent",
                  "missing (unix)")
        c = socket.socket()
        c.bind(("127.0.0.1", 0))
        closed = c.getsockname()[1]
        c.close()
        t_refused(st, f"tcp:127.0.0.1:{closed}", "tcpref",
                  "refusing (tcp)")
        t_vsock(st)
        t_signal(st, p, signal.SIGTERM, 10)
        p2 = st.start_bridge(f"unix:{sock}", "sigint")
        t_signal(st, p2, signal.SIGINT, 3)
    finally:
        st.cleanup()
    return 1 if st.failed else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--unix", required=True)
    sv.add_argument("--tcp", action="store_true")
    su = sub.add_parser("suite")
    su.add_argument("--bridge", required=True)
    su.add_argument("--conns", type=int, default=500)
    su.add_argument("--big", type=int, default=100)
    su.add_argument("--no-rss", action="store_true")
    args = ap.parse_args()
    if args.cmd == "serve":
        try:
            asyncio.run(serve(args))
        except KeyboardInterrupt:
            pass
        return 0
    return suite(args)


if __name__ == "__main__":
    sys.exit(main())
