#!/usr/bin/env python3
"""Checks from outside, as a user would, that every event of an upstream burst reaches curl at once,
plain and compressed, over HTTP/1.1 and h2c.

An upstream on 127.0.0.1 writes BURST events (about 90 bytes each) in one piece and then stays silent;
the built ssegate binary serves it; curl reads for WAIT seconds with and without --compressed. Every
client must count all BURST events. Bounded: one upstream, a few curls, a few seconds; stops every
process it started.

    swift build && scripts/burst_check.py [--binary .build/debug/ssegate] [--burst 200] [--wait 1.5]
"""
import argparse
import http.server
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    streams = []

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        Upstream.streams.append(self.wfile)
        while True:  # silent until the checker ends; bytes go out only through burst()
            time.sleep(0.2)

    def log_message(self, *args):
        pass


def wait_joined(admin_port, count, timeout=10.0):
    """Waits until the gateway counts `count` connected clients (its /metrics), so the burst reaches all."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=1) as response:
                for line in response.read().decode().splitlines():
                    if line.startswith("ssegate_connected_clients ") and float(line.split()[1]) >= count:
                        return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"the gateway never counted {count} clients")


def burst(count, start):
    body = "".join(
        f'id: {i}\ndata: {{"seq":{i},"symbol":"ACME","price":{100 + i % 7}.25,"note":"burst event"}}\n\n'
        for i in range(start, start + count)
    ).encode()
    for stream in list(Upstream.streams):
        stream.write(body)
        stream.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build/debug/ssegate")
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--wait", type=float, default=1.5)
    args = parser.parse_args()

    upstream_port, gateway_port, admin_port = free_port(), free_port(), free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", upstream_port), Upstream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    config.write(f"""log_level: warning
listen: [{{ address: 127.0.0.1:{gateway_port} }}]
admin: {{ address: 127.0.0.1:{admin_port} }}
feeds:
  - path: /burst
    upstream: {{ url: http://127.0.0.1:{upstream_port}/burst }}
""")
    config.close()
    gateway = subprocess.Popen([args.binary, "serve", "--config", config.name])
    curls = []
    try:
        deadline = time.time() + 10
        while not Upstream.streams and time.time() < deadline:
            time.sleep(0.05)
        if not Upstream.streams:
            sys.exit("the gateway never connected upstream")
        url = f"http://127.0.0.1:{gateway_port}/burst"
        variants = [("http/1.1", ["--http1.1"]), ("http/1.1 gzip", ["--http1.1", "--compressed"]),
                    ("h2c", ["--http2-prior-knowledge"]), ("h2c gzip", ["--http2-prior-knowledge", "--compressed"])]
        for name, flags in variants:
            out = tempfile.TemporaryFile()
            curls.append((name, out, subprocess.Popen(["curl", "-sN", "--max-time", str(args.wait + 2)] + flags + [url], stdout=out)))
        wait_joined(admin_port, len(curls))
        burst(args.burst, 1)
        time.sleep(args.wait)  # then silence: nothing more comes from upstream
        failed = False
        for name, out, process in curls:
            process.terminate()
            process.wait()
            out.seek(0)
            ids = [line for line in out.read().decode(errors="replace").split("\n") if line.startswith("id: ")]
            ok = len(ids) == args.burst
            failed |= not ok
            print(f"{name:14} {len(ids):5} of {args.burst} events within {args.wait}s of the burst {'ok' if ok else 'MISSING'}")
        sys.exit(1 if failed else 0)
    finally:
        for _, _, process in curls:
            if process.poll() is None:
                process.kill()
        gateway.terminate()
        try:
            gateway.wait(timeout=10)
        except subprocess.TimeoutExpired:
            gateway.kill()
        os.unlink(config.name)
        server.shutdown()


if __name__ == "__main__":
    main()
