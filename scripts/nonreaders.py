#!/usr/bin/env python3
"""Kernel and process memory held by clients that send a GET and never read (issue 14, item 4).

    scripts/nonreaders.py [--ssegate PATH] [--send-buffer SIZE] [--clients 300] [--fast 50]
                          [--seconds 20] [--rate 100] [--payload 8000] [--max-queue 1MiB]

Starts `ssegate origin` (RATE events/s of PAYLOAD bytes) and `ssegate serve` with
`defaults.client.socket_send_buffer: SIZE` (`0` = the kernel's autotuning, the old behaviour), then FAST
clients that read every event (each checks that the origin's ids arrive one after the other) and CLIENTS
clients with a 4 KiB SO_RCVBUF that send `GET /prices` and never read. Every half second it samples
`ss -tmn` (skmem) for every socket of the gateway's port, in any state (an evicted client's socket is
closed by the gateway but keeps its unsent bytes while the peer's window is zero), and the gateway's
VmRSS. Prints the peaks: kernel send memory of the gateway's sockets (skmem `w`, wmem_queued, summed and
per socket), the gateway's RSS growth, evictions, and what the fast clients received (events, gaps).

Bounded: SECONDS of attack (at most 60), then every process it started is stopped by PID.
Only the standard library, plus `ss` (iproute2) and curl.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


SKMEM = re.compile(r"skmem:\(([^)]*)\)")


def sample_sockets(port):
    """skmem of every TCP socket whose local port is `port`: a list of dicts (r, tb, w, ...)."""
    out = subprocess.run(
        ["ss", "-tmnH", "state", "connected", "sport", "=", f":{port}"], capture_output=True, text=True, timeout=10
    ).stdout
    sockets = []
    for match in SKMEM.finditer(out):
        fields = {}
        for part in match.group(1).split(","):
            key = part.rstrip("0123456789")
            fields[key] = int(part[len(key):])
        sockets.append(fields)
    return sockets


def metric(admin, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=30).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class FastReader(threading.Thread):
    """Reads the stream as fast as it comes and checks the origin's ids follow each other."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.events, self.gaps, self.error = 0, 0, None

    def run(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(b"GET /prices HTTP/1.1\r\nHost: a\r\n\r\n")
            last, pending = None, b""
            while not self.stop.is_set():
                chunk = s.recv(262144)
                if not chunk:
                    self.error = "closed by the gateway"
                    return
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if line.startswith(b"id:"):
                        value = int(line[3:].strip())
                        if last is not None and value != last + 1:
                            self.gaps += 1
                        last = value
                        self.events += 1
            s.close()
        except Exception as error:  # reported, not raised: one failing reader must not hide the others
            self.error = repr(error)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ssegate", default=".build/release/ssegate")
    parser.add_argument("--send-buffer", default="64KiB")
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--fast", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--payload", type=int, default=8000)
    parser.add_argument("--max-queue", default="1MiB")
    args = parser.parse_args()
    seconds = min(args.seconds, 60)

    tmp = tempfile.mkdtemp()
    port, admin, origin_port = free_port(), free_port(), free_port()
    with open(f"{tmp}/ssegate.yaml", "w") as f:
        f.write(
            f"""log_level: warning
listen:
  - address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
shutdown_timeout: 1s
defaults:
  client:
    max_queue: {args.max_queue}
    socket_send_buffer: {args.send_buffer}
feeds:
  - name: prices
    path: /prices
    upstream: {{ url: "http://127.0.0.1:{origin_port}/prices" }}
    connect: always
"""
        )
    procs = []
    try:
        procs.append(subprocess.Popen(
            [args.ssegate, "origin", "--port", str(origin_port), "--rate", str(args.rate), "--payload", str(args.payload)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        gateway = subprocess.Popen([args.ssegate, "serve", "--config", f"{tmp}/ssegate.yaml"],
                                   stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/ssegate.log", "w"))
        procs.append(gateway)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        else:
            sys.exit("the gateway did not become ready:\n" + open(f"{tmp}/ssegate.log").read())

        stop = threading.Event()
        readers = [FastReader(port, stop) for _ in range(args.fast)]
        for reader in readers:
            reader.start()
        time.sleep(1)
        rss_start = rss_kb(gateway.pid)

        attackers = []
        for _ in range(args.clients):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /prices HTTP/1.1\r\nHost: a\r\n\r\n")
            attackers.append(s)

        peak_total = peak_one = peak_rss = peak_sockets = 0
        peak_tb = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            sockets = sample_sockets(port)
            total = sum(s.get("w", 0) for s in sockets)
            peak_total = max(peak_total, total)
            peak_one = max([peak_one] + [s.get("w", 0) for s in sockets])
            # A socket still in the accept queue has the kernel's default sndbuf and holds nothing yet.
            peak_tb = max([peak_tb] + [s.get("tb", 0) for s in sockets if s.get("w", 0) > 0])
            peak_sockets = max(peak_sockets, len(sockets))
            peak_rss = max(peak_rss, rss_kb(gateway.pid))
            time.sleep(0.5)
        evicted = metric(admin, "ssegate_evictions_total")
        stop.set()
        for reader in readers:
            reader.join(5)
        for s in attackers:
            s.close()

        events = [r.events for r in readers]
        print(f"socket_send_buffer={args.send_buffer} max_queue={args.max_queue} clients={args.clients} "
              f"fast={args.fast} rate={args.rate}/s payload={args.payload} B seconds={seconds:g}")
        print(f"kernel send memory of the gateway's sockets (skmem w): peak total {peak_total / 1e6:.1f} MB, "
              f"peak per socket {peak_one / 1024:.0f} KiB, largest sndbuf (tb) of a socket holding data {peak_tb / 1024:.0f} KiB, "
              f"{peak_sockets} sockets at most")
        print(f"gateway RSS: {rss_start} kB before the attack, peak {peak_rss} kB (+{peak_rss - rss_start} kB)")
        print(f"evictions: {evicted:.0f}")
        print(f"fast clients: events min {min(events)} max {max(events)}, gaps {sum(r.gaps for r in readers)}, "
              f"errors {[r.error for r in readers if r.error]}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
