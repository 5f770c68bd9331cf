#!/usr/bin/env python3
"""Short-lived connections of one kind against a running ssegate, for scripts/leakcheck.sh.

    leakcheck.py KIND COUNT --port P [--tls-port T] [--concurrency C]

Kinds (issue 16, findings 1 and 2):
  http1-404    GET /nope with Connection: close, read the 404 to the end
  http1-400    a malformed request line, read the 400 to the end
  stream       GET /prices, read the response head, close (a stream opened and left)
  tls-timeout  TLS handshake (ALPN http/1.1), then nothing until the header timeout closes it
  h2-streams   h2c connections of 100 GET /nope streams each (answered 404), then PING; COUNT streams in all
  h2-reset     h2c connections of 190 HEADERS + RST_STREAM pairs each on /prices; COUNT pairs in all

Prints one line: kind, count, seconds, failures. Only the standard library; bounded in count and time.
"""
import argparse
import asyncio
import ssl
import struct
import time
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    # HPACK literal header field without indexing, plain strings (RFC 7541 §6.2.2); short strings only.
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def request_block(path):
    return literal(b":method", b"GET") + literal(b":scheme", b"http") + literal(b":path", path) + literal(b":authority", b"a")


async def read_until_closed(reader, limit=5.0):
    try:
        while await asyncio.wait_for(reader.read(65536), limit):
            pass
    except (asyncio.TimeoutError, ConnectionError):
        pass


async def http1(port, request, head_only=False):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    if head_only:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await asyncio.wait_for(reader.read(4096), 5)
            if not chunk:
                break
            data += chunk
    else:
        await read_until_closed(reader)
    writer.close()


async def tls_timeout(port, context):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    await read_until_closed(reader, 10)
    writer.close()


async def h2(port, streams, reset):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = bytearray(PREFACE + frame(0x4, 0, 0))
    block = request_block(b"/prices" if reset else b"/nope")
    for index in range(streams):
        stream = 1 + 2 * index
        out += frame(0x1, 0x5, stream, block)  # HEADERS, END_STREAM | END_HEADERS
        if reset:
            out += frame(0x3, 0, stream, struct.pack(">I", 8))  # RST_STREAM CANCEL
    if not reset:
        out += frame(0x6, 0, 0, b"leakchk!")  # PING: its ACK comes after the responses to the streams
    writer.write(bytes(out))
    await writer.drain()
    if reset:
        # The attacker closes at once; give the gateway the bytes, not an answer.
        await asyncio.sleep(0.01)
    else:
        # Read frames until the PING ACK, acknowledging the server's SETTINGS.
        buffer = b""
        acked = False
        while not acked:
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                raise ConnectionError("closed before the PING ACK")
            buffer += chunk
            while len(buffer) >= 9 and not acked:
                length = int.from_bytes(buffer[:3], "big")
                if len(buffer) < 9 + length:
                    break
                kind, flags = buffer[3], buffer[4]
                if kind == 0x4 and not flags & 0x1:
                    writer.write(frame(0x4, 0x1, 0))
                acked = kind == 0x6 and flags & 0x1 == 1
                buffer = buffer[9 + length:]
    writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("count", type=int)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()

    context = None
    if args.kind == "tls-timeout":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])

    def job():
        if args.kind == "http1-404":
            return http1(args.port, b"GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        if args.kind == "http1-400":
            return http1(args.port, b"GARBAGE\r\n\r\n")
        if args.kind == "stream":
            return http1(args.port, b"GET /prices HTTP/1.1\r\nHost: a\r\n\r\n", head_only=True)
        if args.kind == "tls-timeout":
            return tls_timeout(args.tls_port, context)
        if args.kind == "h2-streams":
            return h2(args.port, 100, reset=False)
        if args.kind == "h2-reset":
            return h2(args.port, 190, reset=True)
        sys.exit(f"unknown kind {args.kind}")

    per_job = {"h2-streams": 100, "h2-reset": 190}.get(args.kind, 1)
    jobs = max(1, args.count // per_job)
    failures = 0
    semaphore = asyncio.Semaphore(args.concurrency)

    async def run_one():
        nonlocal failures
        async with semaphore:
            try:
                await asyncio.wait_for(job(), 20)
            except Exception:
                failures += 1

    started = time.monotonic()
    await asyncio.gather(*(run_one() for _ in range(jobs)))
    print(f"{args.kind} {jobs * per_job} {time.monotonic() - started:.1f}s failures={failures}")


asyncio.run(main())
