#!/usr/bin/env python3
"""Checks that eviction and replay still hold while ssegate carries a benchmark's load.

Run by `bench/run.sh --probe` during ssegate's measured window, beside the N load clients:

- Slow consumers: `--stalled` clients of the burst feed (a second origin sending large events fast)
  open a socket with a 4 KiB receive buffer, send their request and never read. ssegate must evict
  each of them (max_queue or max_lag) while `--readers` clients of the same feed read every event
  (no gap in the origin's `seq`), and while the load clients of the main feed see no disconnect (the
  load client reports that).
- Replay: a client of the main feed reads the first event id, disconnects, waits `--resume-after`
  seconds and reconnects with `Last-Event-ID`; the replay must start at the next id and run on with
  consecutive ids, with no gap notice.

Prints one JSON line; exits 0 when every check held, 1 otherwise. Uses only the standard library.
"""
import argparse
import json
import re
import socket
import sys
import threading
import time
import urllib.request

SEQ = re.compile(rb'"seq":(\d+)')


def request(path: str, host: str, extra: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n{extra}\r\n").encode()


class Stream:
    """One SSE response read from a socket: the status, then events as (id, data) as they complete."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""
        self.status = None
        self.body = b""
        self.chunked = False

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def read_head(self) -> int:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("closed before the response head")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split()[1])
        self.chunked = any(line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower() for line in lines[1:])
        return self.status

    def _dechunk(self):
        if not self.chunked:
            self.body += self.buffer
            self.buffer = b""
            return
        while True:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            size = int(self.buffer[:end].split(b";")[0], 16)
            if len(self.buffer) < end + 2 + size + 2:
                return
            self.body += self.buffer[end + 2:end + 2 + size]
            self.buffer = self.buffer[end + 2 + size + 2:]

    def events(self, until: float):
        """Yields raw event blocks until the deadline or the end of the stream."""
        while time.monotonic() < until:
            self._dechunk()
            while b"\n\n" in self.body:
                block, self.body = self.body.split(b"\n\n", 1)
                yield block
            self.sock.settimeout(max(0.01, until - time.monotonic()))
            try:
                if not self._fill():
                    return
            except socket.timeout:
                return


def connect(host: str, port: int, rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect((host, port))
    return sock


def event_id(block: bytes):
    for line in block.split(b"\n"):
        if line.startswith(b"id:"):
            return line[3:].strip().decode()
    return None


def reader(host, port, path, seconds, result):
    """Reads the burst feed and counts events and gaps in `seq`."""
    try:
        sock = connect(host, port)
        sock.sendall(request(path, f"{host}:{port}"))
        stream = Stream(sock)
        result["status"] = stream.read_head()
        last = None
        for block in stream.events(time.monotonic() + seconds):
            match = SEQ.search(block)
            if not match:
                continue
            seq = int(match.group(1))
            result["events"] += 1
            if last is not None and seq > last + 1:
                result["missing"] += seq - last - 1
            last = seq if last is None else max(last, seq)
        result["ended_early"] = time.monotonic() < result["deadline"] - 0.5
        sock.close()
    except Exception as error:  # reported, and the check fails
        result["error"] = repr(error)


def resume_check(host, port, path, wait):
    """Reads one id, reconnects `wait` seconds later with Last-Event-ID, checks the replay."""
    out = {"ok": False}
    try:
        sock = connect(host, port)
        sock.sendall(request(path, f"{host}:{port}"))
        stream = Stream(sock)
        stream.read_head()
        first = None
        for block in stream.events(time.monotonic() + 5):
            first = event_id(block)
            if first is not None:
                break
        sock.close()
        if first is None:
            out["error"] = "no event with an id within 5 s"
            return out
        time.sleep(wait)
        sock = connect(host, port)
        sock.sendall(request(path, f"{host}:{port}", f"Last-Event-ID: {first}\r\n"))
        stream = Stream(sock)
        out["status"] = stream.read_head()
        ids, gap = [], False
        for block in stream.events(time.monotonic() + 1.5):
            if b": gap" in block or block.startswith(b"event: gap"):
                gap = True
            found = event_id(block)
            if found is not None:
                ids.append(int(found))
        sock.close()
        expected = list(range(int(first) + 1, int(first) + 1 + len(ids)))
        out.update(resumed_after=int(first), received=len(ids), first_received=ids[0] if ids else None,
                   consecutive=ids == expected, gap_notice=gap)
        out["ok"] = out["status"] == 200 and len(ids) > 0 and ids == expected and not gap
    except Exception as error:
        out["error"] = repr(error)
    return out


def was_closed_by_server(sock: socket.socket, seconds: float = 2.0) -> bool:
    """Reads what the server left queued; True once the stream ends (FIN or RST) within `seconds`."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(1 << 20):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def evictions(admin: str, feed: str) -> int:
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("ssegate_evictions_total{") and f'feed="{feed}"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin", required=True, help="host:port of ssegate's admin listener")
    parser.add_argument("--main", default="/feed")
    parser.add_argument("--burst", default="/burst")
    parser.add_argument("--burst-feed", default="burst", help="the burst feed's name in /metrics")
    parser.add_argument("--stalled", type=int, default=5)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--resume-after", type=float, default=3)
    args = parser.parse_args()

    evicted_before = evictions(args.admin, args.burst_feed)
    stalled = []
    for _ in range(args.stalled):
        sock = connect(args.host, args.port, rcvbuf=4096)
        sock.sendall(request(args.burst, f"{args.host}:{args.port}"))
        stalled.append(sock)
    deadline = time.monotonic() + args.duration
    results = [{"events": 0, "missing": 0, "deadline": deadline} for _ in range(args.readers)]
    threads = [threading.Thread(target=reader, args=(args.host, args.port, args.burst, args.duration, r)) for r in results]
    for thread in threads:
        thread.start()
    resume = resume_check(args.host, args.port, args.main, args.resume_after)
    for thread in threads:
        thread.join()
    counted = evictions(args.admin, args.burst_feed) - evicted_before
    # Each stalled client must itself have been cut off (the counter alone could also count a reader).
    evicted = sum(1 for sock in stalled if was_closed_by_server(sock))
    for sock in stalled:
        sock.close()

    readers_ok = all(r.get("status") == 200 and r["events"] > 0 and r["missing"] == 0 and not r.get("ended_early") and "error" not in r
                     for r in results)
    report = {
        "stalled": args.stalled, "stalled_evicted": evicted, "evictions_counted": counted,
        "readers": args.readers, "reader_events": [r["events"] for r in results],
        "reader_missing": sum(r["missing"] for r in results),
        "reader_errors": [r["error"] for r in results if "error" in r],
        "resume": resume,
        "ok": evicted == args.stalled and counted >= args.stalled and readers_ok and resume["ok"],
    }
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
