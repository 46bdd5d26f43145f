#!/bin/sh
# Benchmark (not a test): pexi-bridge against socat for the same relay,
# TCP 127.0.0.1 -> unix socket, with the same python endpoints.
#   - throughput of a 1 GiB transfer, each direction (best of 3)
#   - memory with 100 idle connections (RSS and PSS, summed over every
#     relay process: socat forks one per connection)
# Usage: sh tests/bench/bench-bridge.sh [PEXI_BRIDGE [GIB]]
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
PB=${1:-$TOP/build/pexi-bridge}
GIB=${2:-1}
command -v socat >/dev/null 2>&1 || {
	echo "bench-bridge: socat missing (apt-get install socat)" >&2; exit 1; }
[ -x "$PB" ] || { echo "bench-bridge: $PB not built (make)" >&2; exit 1; }

exec python3 - "$PB" "$GIB" <<'EOF'
import os, socket, subprocess, sys, tempfile, threading, time

PB, GIB = sys.argv[1], int(sys.argv[2])
TOTAL = GIB << 30
BUF = bytearray(1 << 20)
tmp = tempfile.mkdtemp(prefix="pexi-bench-")
UP = os.path.join(tmp, "up.sock")


def upstream():
    """S: sink until EOF, answer b'ok'; G: send TOTAL bytes; I: idle."""
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(UP)
    ls.listen(1024)

    def conn(c):
        cmd = c.recv(1)
        if cmd == b"S":
            view = memoryview(BUF)
            while c.recv_into(view):
                pass
            c.sendall(b"ok")
        elif cmd == b"G":
            left = TOTAL
            while left:
                left -= c.send(memoryview(BUF)[:min(left, len(BUF))])
        elif cmd == b"I":
            c.recv(1)
        c.close()
    while True:
        c, _ = ls.accept()
        threading.Thread(target=conn, args=(c,), daemon=True).start()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("relay did not start")


def upload(port):
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.time()
    s.sendall(b"S")
    left, view = TOTAL, memoryview(BUF)
    while left:
        left -= s.send(view[:min(left, len(BUF))])
    s.shutdown(socket.SHUT_WR)
    assert s.recv(2) == b"ok"
    dt = time.time() - t0
    s.close()
    return TOTAL / dt / (1 << 20)


def download(port):
    s = socket.create_connection(("127.0.0.1", port))
    buf = bytearray(1 << 20)
    t0 = time.time()
    s.sendall(b"G")
    n = 0
    while True:
        k = s.recv_into(buf)
        if not k:
            break
        n += k
    dt = time.time() - t0
    s.close()
    assert n == TOTAL, n
    return TOTAL / dt / (1 << 20)


def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return pids


def mem(pid):
    rss = pss = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss, len(tree(pid))


def idle_mem(port, proc):
    conns = []
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"I")
        conns.append(s)
    time.sleep(1.0)
    r = mem(proc.pid)
    for s in conns:
        s.close()
    return r


def run(name, argv):
    port = free_port()
    argv = [a.replace("PORT", str(port)) for a in argv]
    proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(0.2)
        base = mem(proc.pid)
        up = max(upload(port) for _ in range(3))
        down = max(download(port) for _ in range(3))
        time.sleep(0.5)
        idle = idle_mem(port, proc)
    finally:
        proc.terminate()
        proc.wait()
    print(f"{name:22s} up {up:7.0f} MiB/s  down {down:7.0f} MiB/s  "
          f"100 idle: RSS {idle[0]:6d} KiB PSS {idle[1]:6d} KiB "
          f"({idle[2]} processes; at start RSS {base[0]} KiB)", flush=True)
    return up, down, idle


threading.Thread(target=upstream, daemon=True).start()
time.sleep(0.2)
print(f"relay TCP 127.0.0.1 -> unix socket, {GIB} GiB per transfer, "
      f"best of 3; {os.cpu_count()} CPUs", flush=True)
pb = run("pexi-bridge", [PB, "-q", "--listen", "tcp:127.0.0.1:PORT",
                         "--upstream", f"unix:{UP}"])
sc = run("socat (default 8 KiB)",
         ["socat", "TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr,fork,"
          "backlog=1024", f"UNIX-CONNECT:{UP}"])
sc64 = run("socat -b 65536",
           ["socat", "-b", "65536", "TCP-LISTEN:PORT,bind=127.0.0.1,"
            "reuseaddr,fork,backlog=1024", f"UNIX-CONNECT:{UP}"])
for label, s in (("socat", sc), ("socat -b 65536", sc64)):
    print(f"pexi-bridge / {label}: throughput up x{pb[0] / s[0]:.2f}, "
          f"down x{pb[1] / s[1]:.2f}; idle memory: {label} uses "
          f"x{s[2][0] / max(pb[2][0], 1):.1f} the RSS, "
          f"x{s[2][1] / max(pb[2][1], 1):.1f} the PSS")
EOF
