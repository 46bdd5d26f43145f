#!/usr/bin/env python3
"""Host endpoint for pep-run's vsock tests: listens on a unix socket
(or TCP 127.0.0.1:PORT) and speaks the guest-client's line protocol:
  ECHO\\n   echo every byte until EOF
  BULK n\\n read n bytes, check the pattern, reply "OK n\\n" (or "BAD ...")
  DOWN n\\n send n pattern bytes, then close
Writes one line per connection to LOG: "<kind> <bytes> <ok|bad>"."""
import os, socket, sys, threading

def pat_block():
    return bytes((((i % 251) * 131 + 7) % 251) for i in range(251))

PAT = pat_block()
lock = threading.Lock()

def log(path, line):
    with lock, open(path, "a") as f:
        f.write(line + "\n")

def readline(c):
    b = b""
    while not b.endswith(b"\n") and len(b) < 64:
        x = c.recv(1)
        if not x:
            break
        b += x
    return b

def handle(c, logpath):
    try:
        line = readline(c)
        if line == b"ECHO\n":
            n = 0
            while True:
                d = c.recv(65536)
                if not d:
                    break
                n += len(d)
                c.sendall(d)
            log(logpath, "echo %d ok" % n)
        elif line.startswith(b"BULK "):
            want = int(line[5:])
            got, ok = 0, True
            while got < want:
                d = c.recv(min(1 << 20, want - got))
                if not d:
                    break
                off = got % 251
                exp = (PAT * ((len(d) + off) // 251 + 2))[off:off + len(d)]
                if d != exp:
                    ok = False
                got += len(d)
            ok = ok and got == want
            c.sendall(b"OK %d\n" % got if ok else b"BAD %d\n" % got)
            log(logpath, "bulk %d %s" % (got, "ok" if ok else "bad"))
        elif line.startswith(b"DOWN "):
            want, sent = int(line[5:]), 0
            while sent < want:
                off = sent % 251
                k = min(1 << 20, want - sent)
                c.sendall((PAT * ((k + off) // 251 + 2))[off:off + k])
                sent += k
            c.shutdown(socket.SHUT_WR)
            c.recv(1)
            log(logpath, "down %d ok" % sent)
        else:
            log(logpath, "unknown %r" % line)
    except OSError as e:
        log(logpath, "error %s" % e)
    finally:
        c.close()

def main():
    addr, logpath = sys.argv[1], sys.argv[2]
    if addr.isdigit():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(addr)))
    else:
        if os.path.exists(addr):
            os.unlink(addr)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(addr)
    s.listen(128)
    open(logpath, "a").close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c, logpath),
                         daemon=True).start()

main()
