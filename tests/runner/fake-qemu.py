#!/usr/bin/env python3
"""A stand-in for qemu-system-* in pep-run's tests. FAKE_QEMU_MODE:
  sleep   sleep (lock and SIGTERM tests)
  exit3   exit with status 3
  badmsg  connect to the vhost-user-vsock socket, do GET_FEATURES, then
          send a malformed message; pep-run must fail and stop us."""
import os, socket, struct, sys, time

mode = os.environ.get("FAKE_QEMU_MODE", "sleep")
if mode == "exit3":
    sys.exit(3)
if mode == "badmsg":
    path = None
    for a in sys.argv:
        if a.startswith("socket,id=vsock0,path="):
            path = a.split("path=", 1)[1].replace(",,", ",")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(struct.pack("<III", 1, 1, 0))
    h = s.recv(12)
    req, flags, size = struct.unpack("<III", h)
    feat = struct.unpack("<Q", s.recv(size))[0]
    print("fake-qemu: features %#x" % feat, file=sys.stderr)
    bad = os.environ.get("FAKE_QEMU_BAD", "vring_num")
    if bad == "vring_num":      # SET_VRING_NUM with a 3-byte payload
        s.sendall(struct.pack("<III", 8, 1, 3) + b"abc")
    elif bad == "huge":         # a size beyond any message
        s.sendall(struct.pack("<III", 5, 1, 0x7fffffff))
    elif bad == "memtable":     # SET_MEM_TABLE without fds
        s.sendall(struct.pack("<IIIII", 5, 1, 40, 1, 0) + b"\0" * 32)
    elif bad == "queue":        # SET_VRING_ADDR for queue 77
        s.sendall(struct.pack("<III", 9, 1, 40) + struct.pack("<II", 77, 0)
                  + b"\0" * 32)
time.sleep(60)
