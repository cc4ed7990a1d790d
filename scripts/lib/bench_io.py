#!/usr/bin/env python3
"""Host side of scripts/bench-debian.sh (Python's standard library only).

  bench_io.py counters SOCKET...     the disco object's counters of each
                                     node (QMP qom-get /objects/disco0
                                     counters), as "key=value" lines summed
                                     over the nodes
  bench_io.py send PORT MIB          connect to 127.0.0.1:PORT (the master's
                                     forward to the guest's listener), send
                                     MIB MiB, half-close, wait until the guest
                                     closes: prints MB/s (10^6 bytes / s)
  bench_io.py send - PORT            the same with what comes on stdin: prints
                                     the bytes sent
  bench_io.py recv PORTFILE MIB [ADDR] [sha256]
                                     listen on ADDR (default 127.0.0.1; port
                                     written to PORTFILE), take one connection,
                                     read to its end (must be MIB MiB): prints
                                     MB/s from the first byte to the end, or
                                     the SHA-256 of what came
  bench_io.py fio FILE               fio's JSON output: "<MB/s> <IOPS> <MiB>" of
                                     its first job (read or write, whichever ran)
"""
import hashlib
import json
import socket
import sys
import time

CHUNK = 1 << 20


def qmp_counters(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(path)
    f = s.makefile("rw")
    json.loads(f.readline())  # greeting
    for cmd in ({"execute": "qmp_capabilities"},
                {"execute": "qom-get",
                 "arguments": {"path": "/objects/disco0", "property": "counters"}}):
        f.write(json.dumps(cmd) + "\n")
        f.flush()
        while True:
            r = json.loads(f.readline())
            if "return" in r or "error" in r:
                break
        if "error" in r:
            raise SystemExit("qmp %s: %s" % (path, r["error"]))
    s.close()
    out = {}
    for line in r["return"].splitlines():
        k, _, v = line.partition("=")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def counters(paths):
    total = {}
    for p in paths:
        for k, v in qmp_counters(p).items():
            total[k] = total.get(k, 0) + v
    for k in sorted(total):
        print("%s=%d" % (k, total[k]))


def send(port, mib):
    buf = b"\0" * CHUNK
    s = socket.create_connection(("127.0.0.1", port), timeout=300)
    t0 = time.monotonic()
    for _ in range(mib):
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    t = time.monotonic() - t0
    s.close()
    print("%.2f" % (mib * CHUNK / t / 1e6))


def send_stdin(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=300)
    n = 0
    while True:
        b = sys.stdin.buffer.read(CHUNK)
        if not b:
            break
        s.sendall(b)
        n += len(b)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    s.close()
    print(n)


def recv(portfile, mib, addr="127.0.0.1", digest=False):
    ls = socket.socket()
    ls.bind((addr, 0))
    ls.listen(1)
    ls.settimeout(300)
    with open(portfile, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    c, _ = ls.accept()
    c.settimeout(300)
    n, t0, h = 0, None, hashlib.sha256()
    while True:
        b = c.recv(CHUNK)
        if not b:
            break
        if t0 is None:
            t0 = time.monotonic()
        n += len(b)
        if digest:
            h.update(b)
    t = time.monotonic() - t0 if t0 else 0
    c.close()
    if n != mib * CHUNK or t <= 0:
        raise SystemExit("received %d bytes, want %d" % (n, mib * CHUNK))
    print(h.hexdigest() if digest else "%.2f" % (n / t / 1e6))


def fio(path):
    with open(path) as f:
        text = f.read()
    job = json.loads(text[text.index("{"):])["jobs"][0]
    side = job["write"] if job["write"]["io_bytes"] > 0 else job["read"]
    print("%.2f %.0f %.1f" % (side["bw_bytes"] / 1e6, side["iops"], side["io_bytes"] / CHUNK))


def main(argv):
    if len(argv) >= 3 and argv[1] == "counters":
        counters(argv[2:])
    elif len(argv) == 4 and argv[1] == "send" and argv[2] == "-":
        send_stdin(int(argv[3]))
    elif len(argv) == 4 and argv[1] == "send":
        send(int(argv[2]), int(argv[3]))
    elif 4 <= len(argv) <= 6 and argv[1] == "recv":
        recv(argv[2], int(argv[3]), argv[4] if len(argv) > 4 else "127.0.0.1",
             len(argv) > 5 and argv[5] == "sha256")
    elif len(argv) == 3 and argv[1] == "fio":
        fio(argv[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
