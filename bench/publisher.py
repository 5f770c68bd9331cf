#!/usr/bin/env python3
"""Feeds an nchan channel the same events `ssegate origin` sends.

Posts `{"seq":N,"ts":<µs since the epoch>,"pad":"xxx..."}` to the nchan publisher location at a
fixed rate over one keep-alive connection (reconnecting if nginx closes it). Events are paced on an
absolute schedule (t0 + n/rate), so a slow POST is caught up rather than lowering the rate, like
the origin's ticker. On SIGTERM/SIGINT it prints one JSON line of its own counters to stdout.
"""
import argparse
import http.client
import json
import signal
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/pub")
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--payload", type=int, default=0)
    args = parser.parse_args()

    stop = False

    def on_signal(_number, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    pad = "x" * args.payload
    headers = {"Content-Type": "text/plain", "Connection": "keep-alive"}
    connection = None
    posted = errors = late = reconnects = 0
    slowest = 0.0
    seq = 0
    start = time.monotonic()
    while not stop:
        due = start + seq / args.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
            if stop:
                break
        elif delay < -1.0 / args.rate:
            late += 1
        seq += 1
        body = '{"seq":%d,"ts":%d,"pad":"%s"}' % (seq, time.time_ns() // 1000, pad)
        began = time.monotonic()
        for attempt in range(2):
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(args.host, args.port, timeout=10)
                    reconnects += 1
                connection.request("POST", args.path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status >= 300:
                    errors += 1
                else:
                    posted += 1
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
                break
            except (OSError, http.client.HTTPException):
                if connection is not None:
                    connection.close()
                connection = None
                if attempt == 1:
                    errors += 1
        slowest = max(slowest, time.monotonic() - began)
    print(json.dumps({"posted": posted, "errors": errors, "late": late, "connections": reconnects,
                      "slowest_post_ms": round(slowest * 1000, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
