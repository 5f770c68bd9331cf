#!/usr/bin/env python3
"""Turns one bench/run.sh run (its temporary folder) into raw JSON lines and a markdown table.

Per target the folder holds measured.env (what run.sh sampled), bench.json (the `ssegate bench
--json` line), and where they apply metrics.txt (ssegate's /metrics after the window), error.log
(nginx) and publisher.json (nchan's feeder).
"""
import argparse
import json
import os
import re

LABELS = {
    "ssegate": "ssegate → origin",
    "ssegate-gzip": "ssegate → origin, gzip clients",
    "nginx": "nginx proxy → origin",
    "nchan": "nchan (+ publisher)",
    "origin": "origin alone",
}


def read_env(path):
    values = {}
    if os.path.exists(path):
        with open(path) as handle:
            for line in handle:
                if "=" in line:
                    key, value = line.rstrip("\n").split("=", 1)
                    values[key] = value
    return values


def read_json_line(path):
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        for line in reversed(handle.read().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    pass
    return None


def number(values, key, default=0.0):
    try:
        return float(values.get(key, default))
    except (TypeError, ValueError):
        return default


def metrics_summary(path):
    if not os.path.exists(path):
        return None
    sums = {}
    with open(path) as handle:
        for line in handle:
            match = re.match(r"^(ssegate_[a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+)$", line.strip())
            if match:
                name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
                key = name
                if name == "ssegate_evictions_total":
                    reason = re.search(r'reason="([^"]+)"', labels)
                    key = f"{name}{{{reason.group(1) if reason else ''}}}"
                sums[key] = sums.get(key, 0) + value
    return sums


def nginx_problems(path):
    if not os.path.exists(path):
        return None
    lines = [line.rstrip() for line in open(path, errors="replace")
             if re.search(r"\[(warn|alert|crit|error|emerg)\]", line)]
    return {"count": len(lines), "first": lines[:3]}


def analyse(run, target):
    folder = os.path.join(run, target)
    measured = read_env(os.path.join(folder, "measured.env"))
    bench = read_json_line(os.path.join(folder, "bench.json"))
    row = {"target": target, "measured": measured, "bench": bench}
    extra = {}
    # What each target may leave beside its measurements, and under which key the report keeps it.
    for key, read, name in [
        ("ssegate_metrics", metrics_summary, "metrics.txt"),
        ("ssegate_metrics_mid_window", metrics_summary, "metrics-mid.txt"),
        ("nginx_error_log", nginx_problems, "error.log"),
        ("publisher", read_json_line, "publisher.json"),
        ("probe", read_json_line, "probe.json"),
    ]:
        value = read(os.path.join(folder, name))
        if value is not None:
            extra[key] = value
    bench_log = os.path.join(folder, "bench.log")
    if os.path.exists(bench_log) and os.path.getsize(bench_log) > 0:
        extra["bench_stderr"] = open(bench_log, errors="replace").read()[-500:]
    row["extra"] = extra

    if measured.get("status") != "ok" or bench is None:
        row["derived"] = None
        return row
    clk = number(measured, "clk_tck", 100)
    window = max(number(measured, "window_s"), 1e-3)
    dps = float(bench.get("deliveries_per_s", 0))
    connected = int(bench.get("connected", 0)) or int(number(measured, "server_side_clients"))
    server_cpu = number(measured, "server_cpu_ticks") / clk / window    # cores busy
    other_cpu = number(measured, "other_cpu_ticks") / clk / window
    per_delivery = (lambda cores: cores / dps * 1e6 if dps > 0 else None)
    per_client = (lambda kib: kib / connected if connected > 0 else None)
    page_kib = number(measured, "page_kib", 4)
    bench_window = float(bench.get("window_s", 0)) or 1
    row["derived"] = derived = {
        "connected": connected,
        "deliveries_per_s": dps,
        "expected_per_s": float(bench.get("expected_per_s", 0)),
        "achieved_pct": 100 * dps / float(bench["expected_per_s"]) if bench.get("expected_per_s") else None,
        "server_cpu_cores": server_cpu,
        "server_cpu_us_per_delivery": per_delivery(server_cpu),
        "feeder_cpu_cores": other_cpu,
        "server_user_share": (number(measured, "server_utime_ticks") / max(1.0, number(measured, "server_utime_ticks") + number(measured, "server_stime_ticks"))),
        "server_ctxt_switches_per_s": number(measured, "server_ctxt_switches") / window,
        "total_cpu_us_per_delivery": per_delivery(server_cpu + other_cpu),
        "idle_rss_mib": number(measured, "idle_rss_kib") / 1024,
        "loaded_rss_mib": number(measured, "loaded_rss_kib") / 1024,
        "rss_kib_per_client": per_client(number(measured, "loaded_rss_kib") - number(measured, "idle_rss_kib")),
        "private_kib_per_client": per_client(number(measured, "loaded_private_kib") - number(measured, "idle_private_kib")),
        "feeder_rss_kib_per_client": per_client(number(measured, "other_loaded_rss_kib") - number(measured, "other_idle_rss_kib")),
        "kernel_tcp_kib_per_client": per_client((number(measured, "tcp_mem_loaded_pages") - number(measured, "tcp_mem_idle_pages")) * page_kib),
        "bench_cpu_pct": 100 * (float(bench.get("bench_cpu_user_s", 0)) + float(bench.get("bench_cpu_system_s", 0))) / bench_window,
        "bench_cpu_cores_sampled": (number(measured, "bench_cpu_ticks") / clk / window
                                    if measured.get("window_truncated") != "1" else 0.0),
        "machine_busy_cores": number(measured, "machine_busy_ticks") / clk / window,
        "machine_softirq_cores": number(measured, "machine_softirq_ticks") / clk / window,
        # Body bytes the load client received per delivery (after de-chunking, before inflating).
        "wire_bytes_per_delivery": float(bench.get("bytes_per_s", 0)) / dps if dps > 0 else None,
    }
    # Tick-based accounting (no CONFIG_IRQ_TIME_ACCOUNTING) charges softirq ticks to the interrupted task's stime
    # as well as to /proc/stat's softirq column, so softirq is not subtracted again here.
    derived["foreign_cpu_cores"] = derived["machine_busy_cores"] - server_cpu - other_cpu - derived["bench_cpu_cores_sampled"]
    return row


def fmt(value, spec=".1f", none="—"):
    return none if value is None else format(value, spec)


def markdown(run_env, rows):
    out = []
    out.append(f"# ssegate side-by-side: {run_env.get('scenario', '')}")
    out.append("")
    out.append(f"`{run_env.get('command', '')}` — {run_env.get('date', '')}")
    out.append("")
    out.append(f"Machine: {run_env.get('nproc')} × {run_env.get('cpu')}, {run_env.get('mem_total')}, Linux {run_env.get('kernel')}, "
               f"`ulimit -n` {run_env.get('nofile')}. nginx {run_env.get('nginx')} ({run_env.get('nginx_workers')} workers), "
               f"nchan {run_env.get('nchan')}, ssegate {run_env.get('ssegate_commit')} ({run_env.get('ssegate_binary')}), "
               f"load client `ssegate bench --threads {run_env.get('bench_threads')}` on the same cores. "
               f"Load average before the run: {run_env.get('loadavg_before')}.")
    out.append("")
    out.append("| target | clients connected | deliveries/s (expected) | missing | disconnects / connect errors | latency p50 / p90 / p99 / max ms "
               "| server CPU µs/delivery | server CPU cores | + feeder CPU µs/delivery | server RSS idle → loaded MiB | server KiB/client RSS (private) "
               "| feeder KiB/client | upstream conns at origin | load client CPU |")
    out.append("|" + "---|" * 14)
    for row in rows:
        label = LABELS.get(row["target"], row["target"])
        derived, bench, measured = row["derived"], row["bench"] or {}, row["measured"]
        if derived is None:
            status = measured.get("status", "no result")
            out.append(f"| {label} | {status} |" + " |" * 12)
            continue
        upstream = measured.get("upstream_connections", "")
        if row["target"] == "nchan":
            publisher = row["extra"].get("publisher") or {}
            upstream = f"— (publisher: {publisher.get('connections', '?')} conn)"
        out.append(
            "| " + " | ".join([
                label,
                f"{derived['connected']} / {bench.get('clients')}",
                f"{derived['deliveries_per_s']:.0f} ({derived['expected_per_s']:.0f}, {fmt(derived['achieved_pct'])}%)",
                str(bench.get("missing")),
                f"{bench.get('disconnects')} / {bench.get('connect_errors')}" + (f" (+{bench.get('non_200')} non-200)" if bench.get("non_200") else ""),
                f"{float(bench.get('latency_ms_p50', 0)):.1f} / {float(bench.get('latency_ms_p90', 0)):.1f} / "
                f"{float(bench.get('latency_ms_p99', 0)):.1f} / {float(bench.get('latency_ms_max', 0)):.1f}",
                fmt(derived["server_cpu_us_per_delivery"], ".2f"),
                fmt(derived["server_cpu_cores"], ".2f"),
                fmt(derived["total_cpu_us_per_delivery"], ".2f") if row["target"] != "origin" else "—",
                f"{derived['idle_rss_mib']:.1f} → {derived['loaded_rss_mib']:.1f}",
                f"{fmt(derived['rss_kib_per_client'], '.2f')} ({fmt(derived['private_kib_per_client'], '.2f')})",
                fmt(derived["feeder_rss_kib_per_client"], ".2f") if row["target"] != "origin" else "—",
                str(upstream),
                f"{derived['bench_cpu_pct']:.0f}%",
            ]) + " |")
    out.append("")
    out.append("Server = the process(es) clients connect to: ssegate serve; nginx master + workers; the origin itself for "
               "\"origin alone\". Feeder = the ssegate origin behind ssegate/nginx, or the Python publisher for nchan. "
               "CPU is utime+stime from /proc/PID/stat over a window inside the load client's window (run.sh: from 1 s after "
               "all N connections are up until 1 s before the window ends), divided by the deliveries/s the load client counted. "
               "KiB/client = (RSS sampled at mid-window − RSS before the clients connected) / clients connected, summed over "
               "the server's processes; (private) is the same with Pss_Anon + Pss_Shmem from smaps_rollup, which counts "
               "nginx's shared zones once and leaves out file-backed pages (binary, libraries). Kernel socket buffers are not in any process's RSS "
               "(the JSON lines carry /proc/net/sockstat's TCP memory growth per client as kernel_tcp_kib_per_client).")
    notes = []
    plain = next((r for r in rows if r["target"] == "ssegate" and r["derived"]), None)
    for row in rows:
        label = LABELS.get(row["target"], row["target"])
        extra = row["extra"]
        measured = row["measured"]
        if measured.get("ramp_s"):
            derived = row["derived"] or {}
            notes.append(f"- {label}: ramp-up {float(measured['ramp_s']):.1f} s; CPU window {float(measured.get('window_s', 0)):.1f} s; "
                         f"{measured.get('server_side_clients')} client connections at the server at mid-window; machine busy "
                         f"{derived.get('machine_busy_cores', 0):.2f} cores of which load client {derived.get('bench_cpu_cores_sampled', 0):.2f}, "
                         f"(softirq, charged to whichever task was running: {derived.get('machine_softirq_cores', 0):.2f}), "
                         f"processes not part of the run {derived.get('foreign_cpu_cores', 0):.2f} "
                         f"(machine busy before the target started: {measured.get('busy_cores_before')}); "
                         f"server CPU {100 * derived.get('server_user_share', 0):.0f}% user / {100 - 100 * derived.get('server_user_share', 0):.0f}% system, "
                         f"{derived.get('server_ctxt_switches_per_s', 0):.0f} context switches/s; at mid-window "
                         f"{float(measured.get('client_recvq_bytes', 0)) / 1024:.0f} KiB waited in the load client's receive queues and "
                         f"{float(measured.get('server_sendq_bytes', 0)) / 1024:.0f} KiB in the server's send queues"
                         + (f", {extra['ssegate_metrics_mid_window'].get('ssegate_queued_bytes', 0) / 1024:.0f} KiB queued inside ssegate"
                            if extra.get("ssegate_metrics_mid_window") else "") + "; "
                         f"load average after {measured.get('loadavg_after')}.")
        if measured.get("retried_after_foreign_cores"):
            notes.append(f"- {label}: measured twice; the first attempt was discarded because other processes used "
                         f"{measured['retried_after_foreign_cores']} cores during its window.")
        if measured.get("window_truncated") == "1":
            notes.append(f"- {label}: the load client's window ended before run.sh's CPU window (the ramp stalled), so the "
                         f"CPU window was cut short and its alignment with the load client's window is approximate.")
        if measured.get("needed_sigkill"):
            notes.append(f"- {label}: did not exit within 5 s of SIGTERM after the run and was killed: `{measured['needed_sigkill']}`.")
        if row["target"] == "ssegate-gzip" and row["derived"] and row["derived"].get("wire_bytes_per_delivery"):
            gzip_bytes = row["derived"]["wire_bytes_per_delivery"]
            plain_bytes = plain["derived"].get("wire_bytes_per_delivery") if plain else None
            notes.append(f"- {label}: {gzip_bytes:.1f} bytes per delivery on the wire"
                         + (f" against {plain_bytes:.1f} for plain clients in this run: compression ratio "
                            f"{plain_bytes / gzip_bytes:.2f} ({100 * gzip_bytes / plain_bytes:.0f}% of the plain size)"
                            if plain_bytes else "") + ".")
        metrics = extra.get("ssegate_metrics")
        if metrics:
            evictions = {k: v for k, v in metrics.items() if k.startswith("ssegate_evictions_total")}
            notes.append(f"- {label}: /metrics after the run: events_in {metrics.get('ssegate_events_in_total', 0):.0f}, "
                         f"deliveries {metrics.get('ssegate_deliveries_total', 0):.0f}, evictions "
                         + (", ".join(f"{k.split('{')[1].rstrip('}')}={v:.0f}" for k, v in evictions.items()) or "0")
                         + f", upstream reconnects {metrics.get('ssegate_upstream_reconnects_total', 0):.0f}.")
        problems = extra.get("nginx_error_log")
        if problems and problems["count"]:
            notes.append(f"- {label}: nginx error.log has {problems['count']} warn/error lines, e.g. `{problems['first'][0][:200]}`")
        publisher = extra.get("publisher")
        if publisher:
            notes.append(f"- {label}: publisher posted {publisher.get('posted')} events ({publisher.get('errors')} errors, "
                         f"{publisher.get('late')} late by more than one interval, slowest POST {publisher.get('slowest_post_ms')} ms).")
        probe = extra.get("probe")
        if probe:
            resume = probe.get("resume", {})
            notes.append(f"- {label}: probe (eviction and replay under this load): {'**held**' if probe.get('ok') else '**FAILED**'}: "
                         f"{probe.get('stalled_evicted')} of {probe.get('stalled')} stalled clients of the fast feed evicted; "
                         f"its {probe.get('readers')} readers got {probe.get('reader_events')} events, {probe.get('reader_missing')} missing"
                         + (f", errors {probe['reader_errors']}" if probe.get("reader_errors") else "")
                         + f"; a client resuming after id {resume.get('resumed_after')} got {resume.get('received')} events starting at "
                         f"{resume.get('first_received')}, consecutive: {resume.get('consecutive')}, gap notice: {resume.get('gap_notice')}"
                         + (f", error {resume['error']}" if resume.get("error") else "") + ". Its CPU and deliveries are in ssegate's "
                         "window but not in the load client's count.")
        if extra.get("bench_stderr"):
            notes.append(f"- {label}: load client stderr: `{extra['bench_stderr'].strip()[:300]}`")
    if notes:
        out.append("")
        out.append("Notes:")
        out.append("")
        out.extend(notes)
    out.append("")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True)
    parser.add_argument("--targets", required=True)
    parser.add_argument("--jsonl", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--scenario", default="")
    args = parser.parse_args()
    run_env = read_env(os.path.join(args.run, "run.env"))
    run_env["scenario"] = args.scenario or os.path.basename(args.markdown)[:-3]
    rows = [analyse(args.run, target) for target in args.targets.split(",") if target]
    with open(args.jsonl, "w") as handle:
        handle.write(json.dumps({"run": run_env}) + "\n")
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    with open(args.markdown, "w") as handle:
        handle.write(markdown(run_env, rows))


if __name__ == "__main__":
    main()
