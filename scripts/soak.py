#!/usr/bin/env python3
"""Chaos soak: two ssegate replicas behind HAProxy in front of a misbehaving origin, while normal clients
stream, for MINUTES. Exits 1 if any well-behaved client missed, repeated or reordered an event, if a replica
that was not killed died, or if descriptors leaked; prints one JSON summary line and writes the RSS samples.

The chaos, at random moments:
  - the origin restarts (every upstream connection closed, new ones refused for 0.5-2 s), stalls (stops
    writing until the gateway's upstream idle_timeout reconnects), writes garbage between events (comments
    with invalid UTF-8, unknown fields, `retry: abc`, `event:` blocks without data) or cuts a connection in
    the middle of an event;
  - replica 1 is SIGKILLed and started again; replica 2 gets SIGHUP reloads (a changed keepalive);
  - slow clients send a GET and never read (4 KiB receive buffer) until evicted;
  - bad clients send malformed requests;
  - well-behaved clients now and then disconnect and resume with Last-Event-ID, as browsers do.
Every well-behaved client must receive every event from its first one to the origin's last exactly once and
in order (they all reconnect within the replay window). Replica 2 (never killed) must hold as many
descriptors at the end, once every client left, as before the first client came.

    swift build --product ssegate && scripts/soak.py --minutes 2 [--binary .build/debug/ssegate] [--plot docs/soak-rss.png]

Needs haproxy (Debian package). Bounded: CLIENTS + a few dozen chaos connections, MINUTES long; it ends
exactly the processes it started.
"""
import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def find(program, extra=("/usr/sbin", "/usr/local/sbin")):
    for folder in os.environ.get("PATH", "").split(":") + list(extra):
        path = os.path.join(folder, program)
        if os.access(path, os.X_OK):
            return path
    return None


# ---- the origin ---------------------------------------------------------------------------------------


class ChaosOrigin:
    """An SSE backend whose every event is kept, so a reconnect with Last-Event-ID resumes exactly, and
    which misbehaves on request. Event n is `id: n` + `data: n=<n> <padding>`."""

    def __init__(self, rate, payload):
        self.rate = rate
        self.padding = "x" * payload
        self.events = []  # event n at index n-1, as bytes
        self.connections = set()  # writers of live streams
        self.stalled = set()
        self.down_until = 0.0
        self.garbage_rate = 0.0
        self.counts = {"connections": 0, "restarts": 0, "stalls": 0, "cuts": 0, "garbage_blocks": 0}
        self.ticking = True

    def event(self, n):
        return f"id: {n}\ndata: n={n} {self.padding}\n\n".encode()

    async def serve(self, reader, writer):
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except Exception:
            writer.close()
            return
        if time.monotonic() < self.down_until:
            writer.close()  # restarting: refused
            return
        # Without Last-Event-ID a stream starts live, as backends do; with one it resumes right after it.
        last = len(self.events)
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("last-event-id:"):
                value = line.split(":", 1)[1].strip()
                last = min(int(value), len(self.events)) if value.isdigit() else last
        self.counts["connections"] += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        backlog = b"".join(self.events[last:])
        if backlog:
            self.chunk(writer, backlog)
        self.connections.add(writer)
        try:
            await reader.read()  # until the gateway closes
        except Exception:
            pass
        finally:
            self.connections.discard(writer)
            self.stalled.discard(writer)
            writer.close()

    @staticmethod
    def chunk(writer, data):
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))

    def garbage(self):
        self.counts["garbage_blocks"] += 1
        return random.choice(
            [
                b": \xff\xfe not UTF-8 \xc3\x28\n",
                b"unknownfield: 1\n",
                b"retry: abc\n",
                b"event: orphan\n\n",
                b"\n\n\n",
                b": " + b"z" * 3000 + b"\n",
            ]
        )

    async def tick(self):
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while self.ticking:
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            n = len(self.events) + 1
            data = self.event(n)
            self.events.append(data)
            for writer in list(self.connections):
                if writer in self.stalled:
                    continue
                noise = self.garbage() if random.random() < self.garbage_rate else b""
                self.chunk(writer, noise + data)

    def restart(self, seconds):
        self.counts["restarts"] += 1
        self.down_until = time.monotonic() + seconds
        for writer in list(self.connections):
            writer.transport.abort()

    def stall(self):
        live = [w for w in self.connections if w not in self.stalled]
        if live:
            self.counts["stalls"] += 1
            self.stalled.add(random.choice(live))

    def cut(self):
        """Ends a connection in the middle of the last event's bytes; the gateway must drop that partial
        event and resume from the one before."""
        live = [w for w in self.connections if w not in self.stalled]
        if live and self.events:
            writer = random.choice(live)
            self.counts["cuts"] += 1
            self.chunk(writer, self.event(len(self.events) + 1)[:-7])
            writer.transport.abort()


# ---- clients ------------------------------------------------------------------------------------------


class GoodClient:
    """An EventSource as browsers run it: reconnects after `retry:` with Last-Event-ID; checks that every
    event follows the one before."""

    def __init__(self, index, port, stop):
        self.index = index
        self.port = port
        self.stop = stop
        self.first = None
        self.last = None
        self.received = 0
        self.violations = []
        self.connects = 0
        self.self_disconnects = 0
        self.retry = 1.0

    async def run(self):
        while not self.stop.is_set():
            try:
                await self.stream()
            except (ConnectionError, asyncio.IncompleteReadError, OSError, asyncio.TimeoutError):
                pass
            if self.stop.is_set():
                break
            await asyncio.sleep(min(self.retry, 2.0) * random.uniform(0.5, 1.0))

    async def stream(self):
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 5)
        self.connects += 1
        try:
            resume = f"Last-Event-ID: {self.last}\r\n" if self.last is not None else ""
            writer.write(f"GET /prices HTTP/1.1\r\nHost: soak\r\nAccept: text/event-stream\r\n{resume}\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status = head.split(b" ", 2)[1]
            if status != b"200":
                return
            chunked = b"transfer-encoding: chunked" in head.lower()
            buffer = b""
            leave_at = time.monotonic() + random.uniform(5, 40)  # a tab closed and opened again
            while not self.stop.is_set():
                if time.monotonic() > leave_at:
                    self.self_disconnects += 1
                    return
                data = await self.read_body(reader, chunked)
                if not data:
                    return
                buffer += data.replace(b"\r\n", b"\n")
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    self.handle(block)
        finally:
            writer.transport.abort()

    async def read_body(self, reader, chunked):
        if not chunked:
            return await asyncio.wait_for(reader.read(65536), 30)
        size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 30)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b""
        data = await reader.readexactly(size + 2)
        return data[:-2]

    def handle(self, block):
        fields = {}
        for line in block.split(b"\n"):
            if not line or line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            fields.setdefault(name, value[1:] if value.startswith(b" ") else value)
        if b"retry" in fields and fields[b"retry"].isdigit():
            self.retry = int(fields[b"retry"]) / 1000
        if fields.get(b"event") == b"gap":
            self.violations.append(f"gap after {self.last}: {fields.get(b'data', b'')[:80]!r}")
            return
        if b"id" not in fields or b"data" not in fields:
            return
        n = int(fields[b"id"])
        if not fields[b"data"].startswith(b"n=%d " % n):
            self.violations.append(f"event {n} carries {fields[b'data'][:20]!r}")
        if self.last is not None and n != self.last + 1:
            kind = "duplicate" if n <= self.last else "missing"
            self.violations.append(f"{kind}: {n} after {self.last}")
        if self.first is None:
            self.first = n
        self.last = n
        self.received += 1


async def slow_client(port, hold):
    """Sends a GET and never reads, with a small receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
        await asyncio.get_running_loop().sock_sendall(sock, b"GET /prices HTTP/1.1\r\nHost: slow\r\n\r\n")
        await asyncio.sleep(hold)
    except OSError:
        pass
    finally:
        sock.close()


async def bad_client(port):
    request = random.choice(
        [
            b"GARBAGE\r\n\r\n",
            b"GET /prices HTTP/1.1\r\n" + b"X-Long: " + b"a" * 40000 + b"\r\n\r\n",
            b"GET /prices HTTP/9.9\r\nHost: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00garbage",
        ]
    )
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
        writer.write(request)
        await asyncio.wait_for(reader.read(4096), 3)
        writer.transport.abort()
    except Exception:
        pass


# ---- processes ----------------------------------------------------------------------------------------


class Replica:
    def __init__(self, binary, folder, index, origin_port):
        self.binary = binary
        self.index = index
        self.port = free_port()
        self.admin = free_port()
        self.config = os.path.join(folder, f"replica{index}.yaml")
        self.log = open(os.path.join(folder, f"replica{index}.log"), "ab")
        self.origin_port = origin_port
        self.keepalive = 2
        self.process = None
        self.write_config()

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(
                f"""log_level: notice
listen:
  - address: {HOST}:{self.port}
admin:
  address: {HOST}:{self.admin}
shutdown_timeout: 3s
defaults:
  retry: 500ms
  keepalive: {self.keepalive}s
  replay: {{ max_events: 3000, max_bytes: 16MiB, max_age: 10m }}   # 150 s at 20 events/s: then RSS is steady
  client: {{ max_queue: 64KiB, max_lag: 5s }}
  upstream:
    connect_timeout: 1s
    idle_timeout: 3s
    backoff: {{ initial: 100ms, max: 1s, reset_after: 2s }}
feeds:
  - name: prices
    path: /prices
    upstream:
      url: http://{HOST}:{self.origin_port}/prices
    connect: always
    ids: upstream
"""
            )

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "serve", "--config", self.config], stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL
        )

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def reload(self):
        self.keepalive = 3 if self.keepalive == 2 else 2
        self.write_config()
        self.process.send_signal(signal.SIGHUP)

    def sample(self):
        pid = self.process.pid
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            return None, None
        return rss, fds


def haproxy_config(lb_port, replicas):
    servers = "\n".join(f"    server r{r.index} {HOST}:{r.port} port {r.admin}" for r in replicas)
    return f"""global
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout http-request 5s
    timeout queue 5s
    retries 3
    option redispatch 1
frontend sse
    bind {HOST}:{lb_port}
    default_backend replicas
backend replicas
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    timeout check 3s
    default-server check inter 300ms fall 1 rise 2
{servers}
"""


async def wait_port(port, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            return True
        except OSError:
            await asyncio.sleep(0.1)
    return False


async def admin_ready(port, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(100), 2)
            writer.close()
            if answer.startswith(b"HTTP/1.1 200"):
                return True
        except (OSError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.1)
    return False


# ---- the run ------------------------------------------------------------------------------------------


async def soak(args):
    random.seed(args.seed)
    # Tasks cancelled at the end (origin connections, clients) are expected; not worth a traceback.
    asyncio.get_running_loop().set_exception_handler(
        lambda loop, context: None
        if isinstance(context.get("exception"), asyncio.CancelledError)
        else loop.default_exception_handler(context)
    )
    folder = tempfile.mkdtemp(prefix="ssegate-soak-")
    origin = ChaosOrigin(args.rate, args.payload)
    origin_server = await asyncio.start_server(origin.serve, HOST, 0)
    origin_port = origin_server.sockets[0].getsockname()[1]
    ticker = asyncio.create_task(origin.tick())
    replicas = [Replica(args.binary, folder, i, origin_port) for i in (1, 2)]
    for replica in replicas:
        replica.start()
    lb_port = free_port()
    with open(os.path.join(folder, "haproxy.cfg"), "w") as f:
        f.write(haproxy_config(lb_port, replicas))
    haproxy = subprocess.Popen(
        [args.haproxy, "-db", "-f", os.path.join(folder, "haproxy.cfg")],
        stdout=open(os.path.join(folder, "haproxy.log"), "ab"),
        stderr=subprocess.STDOUT,
    )
    samples = []
    summary = {"folder": folder}
    failures = []
    stop = asyncio.Event()
    try:
        for replica in replicas:
            if not await admin_ready(replica.admin):
                raise RuntimeError(f"replica {replica.index} did not start; see {folder}")
        if not await wait_port(lb_port):
            raise RuntimeError(f"haproxy did not start; see {folder}")
        await asyncio.sleep(1.5)  # health checks up, upstream connected
        _, fds_before = replicas[1].sample()

        clients = [GoodClient(i, lb_port, stop) for i in range(args.clients)]
        client_tasks = [asyncio.create_task(c.run()) for c in clients]
        chaos_tasks = set()
        started = time.monotonic()
        end = started + args.minutes * 60
        next_kill = started + random.uniform(15, 25)
        next_reload = started + random.uniform(5, 10)
        next_restart = started + random.uniform(10, 20)
        kills = reloads = slow = bad = 0
        origin.garbage_rate = 0.05
        while time.monotonic() < end:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for replica in replicas:
                rss, fds = replica.sample()
                if rss is not None:
                    samples.append({"t": round(now - started, 1), "replica": replica.index, "rss_kb": rss, "fds": fds})
            if replicas[1].process.poll() is not None:
                failures.append(f"replica 2 exited with {replicas[1].process.returncode}")
                break
            if now >= next_kill and now < end - 15:
                replicas[0].kill()
                kills += 1
                await asyncio.sleep(random.uniform(0.5, 1.5))
                replicas[0].start()
                next_kill = now + random.uniform(20, 35)
            if now >= next_reload:
                replicas[1].reload()
                reloads += 1
                next_reload = now + random.uniform(8, 15)
            if now >= next_restart and now < end - 15:
                random.choice([lambda: origin.restart(random.uniform(0.5, 2.0)), origin.stall, origin.cut])()
                next_restart = now + random.uniform(8, 16)
            for _ in range(random.randint(0, 2)):
                slow += 1
                chaos_tasks.add(asyncio.create_task(slow_client(random.choice([lb_port] + [r.port for r in replicas]), random.uniform(5, 15))))
            for _ in range(random.randint(0, 3)):
                bad += 1
                chaos_tasks.add(asyncio.create_task(bad_client(random.choice([lb_port] + [r.port for r in replicas]))))
            chaos_tasks = {t for t in chaos_tasks if not t.done()}

        # Calm: no more chaos; the origin stops; every client must reach its last event.
        origin.garbage_rate = 0.0
        await asyncio.sleep(2)
        origin.ticking = False
        await ticker
        final = len(origin.events)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(c.last != final for c in clients):
            await asyncio.sleep(0.2)
        stop.set()
        for task in client_tasks + list(chaos_tasks):
            task.cancel()
        await asyncio.gather(*client_tasks, *chaos_tasks, return_exceptions=True)
        # The gateways notice the closed clients (a never-reading one when its next write fails, at the
        # latest after max_lag): wait for replica 2 to hold what it held before the first client.
        settle_started = time.monotonic()
        rss_end, fds_after = replicas[1].sample()
        while fds_after is not None and fds_after > fds_before and time.monotonic() - settle_started < 15:
            await asyncio.sleep(0.25)
            rss_end, fds_after = replicas[1].sample()
        summary["replica2_settle_seconds"] = round(time.monotonic() - settle_started, 2)

        behind = [c for c in clients if c.last != final]
        violations = [(c.index, v) for c in clients for v in c.violations]
        if violations:
            failures.append(f"{len(violations)} violations, first: {violations[:5]}")
        if behind:
            failures.append(f"{len(behind)} clients did not reach event {final}: {[(c.index, c.last) for c in behind[:5]]}")
        if fds_before is not None and fds_after is not None and fds_after > fds_before:
            failures.append(f"replica 2 holds {fds_after} descriptors after the run, {fds_before} before it")
        rss2 = [s["rss_kb"] for s in samples if s["replica"] == 2]
        third = max(1, len(rss2) // 3)
        summary.update(
            {
                "minutes": args.minutes,
                "clients": args.clients,
                "events": final,
                "deliveries": sum(c.received for c in clients),
                "client_connects": sum(c.connects for c in clients),
                "client_self_disconnects": sum(c.self_disconnects for c in clients),
                "violations": len(violations),
                "replica1_kills": kills,
                "replica2_reloads": reloads,
                "slow_clients": slow,
                "bad_requests": bad,
                "origin": origin.counts,
                "replica2_fds_before": fds_before,
                "replica2_fds_after": fds_after,
                "replica2_rss_kb_first_third_max": max(rss2[:third]) if rss2 else None,
                "replica2_rss_kb_last_third_max": max(rss2[-third:]) if rss2 else None,
                "replica2_rss_kb_end_idle": rss_end,
                "failures": failures,
            }
        )
    except RuntimeError as error:
        failures.append(str(error))
        summary["failures"] = failures
    finally:
        stop.set()
        haproxy.terminate()
        for replica in replicas:
            replica.kill()
        haproxy.wait()
        origin_server.close()
        for writer in list(origin.connections):
            writer.transport.abort()
        await asyncio.sleep(0.1)
    if args.samples:
        with open(args.samples, "w") as f:
            f.write("t,replica,rss_kb,fds\n")
            for s in samples:
                f.write(f"{s['t']},{s['replica']},{s['rss_kb']},{s['fds']}\n")
    if args.plot and samples:
        plot(samples, args.plot, summary)
    if not failures and not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
        summary["folder"] = "(removed: the run passed; --keep keeps it)"
    print(json.dumps(summary))
    return 1 if failures else 0


def plot(samples, path, summary):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("soak: matplotlib is not installed (pip install matplotlib); no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(9, 4))
    for index, label in ((1, "replica 1 (SIGKILLed and restarted)"), (2, "replica 2 (SIGHUP reloads)")):
        points = [(s["t"], s["rss_kb"] / 1024) for s in samples if s["replica"] == index]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, linewidth=1)
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(
        f"ssegate chaos soak: {summary.get('minutes')} min, {summary.get('clients')} clients, "
        f"{summary.get('events')} events, {summary.get('violations')} violations"
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=2)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20, help="origin events per second")
    parser.add_argument("--payload", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", ".build", "debug", "ssegate"))
    parser.add_argument("--haproxy", default=find("haproxy"))
    parser.add_argument("--samples", help="write RSS and descriptor samples (CSV) here")
    parser.add_argument("--keep", action="store_true", help="keep the logs and configs of a passing run")
    parser.add_argument("--plot", help="write the RSS curve (PNG, needs matplotlib) here")
    args = parser.parse_args()
    if not args.haproxy:
        print("soak: haproxy is not installed (Debian package 'haproxy')", file=sys.stderr)
        return 2
    if not os.access(args.binary, os.X_OK):
        print(f"soak: no ssegate binary at {args.binary} (swift build --product ssegate)", file=sys.stderr)
        return 2
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
