import NIOHTTP1

/// The admin root: one self-contained page (inline CSS and JavaScript, no fonts, images or scripts
/// from anywhere, so it works on an air-gapped box) that follows `/api/status/stream` with an
/// EventSource and updates in place. The Content-Security-Policy lets the browser enforce that: the
/// page may talk to its own origin only.
///
/// Everything that comes from the gateway (paths, URLs, event ids from upstreams) is set with
/// `textContent`, never parsed as HTML. `?interval_ms=` on the page is passed to the stream.
/// The page exposes its progress as `data-` attributes on `<body>` (samples received, events in at
/// the first and the latest sample, connection state) so a headless browser can check it from the DOM.
enum StatusPage {
    static let headers: [(String, String)] = [
        (
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ]

    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>ssegate status</title>
        <link rel="icon" href="data:,">
        <style>
        :root {
          --bg: #f5f6f8; --panel: #fff; --text: #1d2330; --muted: #667085; --line: #e3e6eb;
          --green: #12805c; --green-bg: #dcf3e9; --amber: #9a6700; --amber-bg: #fff1c7;
          --red: #b42318; --red-bg: #fde4e1; --grey: #475467; --grey-bg: #eceff3; --accent: #2f6fde;
        }
        @media (prefers-color-scheme: dark) {
          :root {
            --bg: #12151b; --panel: #1b1f27; --text: #e6e9ef; --muted: #98a2b3; --line: #2b313c;
            --green: #4ade9b; --green-bg: #123325; --amber: #f5c451; --amber-bg: #3a2f10;
            --red: #ff7b6e; --red-bg: #3d1714; --grey: #b3bcc9; --grey-bg: #2a303a; --accent: #6b9cff;
          }
        }
        * { box-sizing: border-box; }
        [hidden] { display: none !important; }
        body { margin: 0; background: var(--bg); color: var(--text);
          font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
        header { display: flex; align-items: center; gap: 14px; padding: 14px 24px; background: var(--panel);
          border-bottom: 1px solid var(--line); }
        h1 { font-size: 18px; margin: 0; letter-spacing: .2px; }
        h1 small { font-weight: 400; color: var(--muted); }
        .pill { display: inline-flex; align-items: center; gap: 6px; padding: 2px 10px; border-radius: 999px;
          font-size: 12px; font-weight: 600; }
        .pill::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: currentColor; }
        .pill.on { color: var(--green); background: var(--green-bg); }
        .pill.off { color: var(--red); background: var(--red-bg); }
        .pill.wait { color: var(--amber); background: var(--amber-bg); }
        #updated { color: var(--muted); font-size: 12px; margin-left: auto; }
        main { padding: 18px 24px 28px; }
        main.stale { opacity: .55; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(136px, 1fr)); gap: 12px; margin-bottom: 18px; }
        .card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 10px 14px; min-height: 92px; }
        .card h2 { margin: 0 0 4px; font-size: 12px; font-weight: 500; color: var(--muted); text-transform: uppercase; letter-spacing: .4px; }
        .card .big { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
        .card .sub { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; }
        .card canvas { display: block; width: 100%; height: 22px; margin-top: 4px; }
        .panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; min-width: 960px; font-size: 13px; }
        th, td { padding: 8px 8px; text-align: left; border-bottom: 1px solid var(--line); vertical-align: middle; }
        th { font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: .4px; color: var(--muted); white-space: nowrap; }
        tr:last-child td { border-bottom: 0; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
        .path { font-weight: 600; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
        .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
        .muted { color: var(--muted); font-size: 12px; }
        .url { color: var(--muted); font-size: 12px; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
          max-width: 250px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; display: block; }
        .badge { display: inline-block; padding: 1px 8px; border-radius: 6px; font-size: 12px; font-weight: 600; }
        .badge.streaming { color: var(--green); background: var(--green-bg); }
        .badge.connecting { color: var(--amber); background: var(--amber-bg); }
        .badge.backoff { color: var(--red); background: var(--red-bg); }
        .badge.idle, .badge.stopped { color: var(--grey); background: var(--grey-bg); }
        .bar { position: relative; width: 104px; height: 8px; border-radius: 4px; background: var(--grey-bg); overflow: hidden; }
        .bar > span { position: absolute; inset: 0 auto 0 0; background: var(--accent); border-radius: 4px; }
        .bar.full > span { background: var(--amber); }
        .c-replay { white-space: nowrap; }
        .warn { color: var(--red); font-weight: 600; }
        .empty { padding: 22px; color: var(--muted); text-align: center; }
        footer { margin-top: 12px; color: var(--muted); font-size: 12px; }
        </style>
        </head>
        <body data-state="connecting" data-samples="0">
        <header>
          <h1>ssegate <small>status</small></h1>
          <span id="conn" class="pill wait">connecting</span>
          <span id="ready" class="pill wait" hidden>not ready</span>
          <span id="updated">waiting for the first sample</span>
        </header>
        <main id="main" class="stale">
          <section class="cards">
            <div class="card"><h2>Clients</h2><div class="big" id="t-clients">—</div><div class="sub" id="t-feeds">—</div></div>
            <div class="card"><h2>Events in /s</h2><div class="big" id="t-events-rate">—</div><div class="sub">total <span id="t-events">—</span></div><canvas id="spark-events"></canvas></div>
            <div class="card"><h2>Deliveries /s</h2><div class="big" id="t-deliveries-rate">—</div><div class="sub">total <span id="t-deliveries">—</span></div><canvas id="spark-deliveries"></canvas></div>
            <div class="card"><h2>Bytes out /s</h2><div class="big" id="t-bytes-rate">—</div><div class="sub">total <span id="t-bytes">—</span></div><canvas id="spark-bytes"></canvas></div>
            <div class="card"><h2 title="Bytes held for clients that are behind">Queued bytes</h2><div class="big" id="t-queued">—</div><div class="sub">keepalives <span id="t-keepalives">—</span></div></div>
            <div class="card"><h2>Evictions</h2><div class="big" id="t-evictions">—</div><div class="sub">max_queue <span id="t-ev-queue">—</span> · max_lag <span id="t-ev-lag">—</span></div></div>
            <div class="card"><h2>Replays</h2><div class="big" id="t-replays">—</div><div class="sub">gaps <span id="t-gaps">—</span></div></div>
            <div class="card"><h2>Reconnects</h2><div class="big" id="t-reconnects">—</div><div class="sub" id="t-states" title="Upstream state of the open feeds">—</div></div>
          </section>
          <div class="panel">
            <table>
              <thead><tr>
                <th>Feed</th><th>Upstream</th><th title="Last event id received from the upstream">Last id</th><th class="num">Clients</th>
                <th class="num">Events /s</th><th class="num" title="Delivery counters are kept per feed definition">Deliveries /s</th>
                <th>Replay buffer</th><th class="num">Gaps</th><th class="num">Reconnects</th>
                <th class="num" title="max_queue / max_lag, per feed definition">Evictions</th><th class="num">Last event</th>
              </tr></thead>
              <tbody id="feeds"><tr><td colspan="11" class="empty">no data yet</td></tr></tbody>
            </table>
          </div>
          <footer id="note">Rates are differences between successive samples of the gateway's counters.
            Deliveries and evictions are counted per feed definition (Σ marks a template's total over its open instances).
            “Last event” is the time since a feed's events-in counter last moved, as sampled; per-event latency is not measured.</footer>
        </main>
        <script>
        'use strict';
        (function () {
          const $ = (id) => document.getElementById(id);
          const body = document.body;
          const group = (n) => String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
          const int = (n) => (n === null || n === undefined) ? '—' : group(n);
          const rate = (r) => (r === null || r === undefined) ? '—' : (r >= 100 ? group(r) : r.toFixed(r >= 1 ? 1 : 2).replace(/\.?0+$/, '') || '0');
          const bytes = (b) => {
            if (b === null || b === undefined) return '—';
            const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
            let i = 0;
            while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
            return (i === 0 ? String(Math.round(b)) : b.toFixed(b >= 100 ? 0 : 1)) + ' ' + units[i];
          };
          const ago = (s) => (s === null || s === undefined) ? '—' : (s < 1 ? '< 1 s' : s < 120 ? Math.round(s) + ' s' : Math.round(s / 60) + ' min');
          const set = (id, text) => { const el = $(id); if (el.textContent !== text) el.textContent = text; };
          const text = (el, value) => { if (el.textContent !== value) el.textContent = value; };

          const history = { events: [], deliveries: [], bytes: [] };
          function spark(id, values) {
            const canvas = $(id);
            const w = canvas.clientWidth, h = canvas.clientHeight, ratio = window.devicePixelRatio || 1;
            if (!w || !h) return;
            if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
            const g = canvas.getContext('2d');
            g.setTransform(ratio, 0, 0, ratio, 0, 0);
            g.clearRect(0, 0, w, h);
            if (values.length < 2) return;
            const max = Math.max(1, ...values) * 1.25;
            const accent = getComputedStyle(document.documentElement).getPropertyValue('--accent');
            const points = values.map((v, i) => [w - ((values.length - 1 - i) / 59) * w, h - 1 - (v / max) * (h - 2)]);
            g.beginPath();
            points.forEach(([x, y], i) => (i === 0 ? g.moveTo(x, y) : g.lineTo(x, y)));
            g.strokeStyle = accent;
            g.lineWidth = 1.5;
            g.stroke();
            g.lineTo(points[points.length - 1][0], h);
            g.lineTo(points[0][0], h);
            g.closePath();
            g.globalAlpha = 0.15;
            g.fillStyle = accent;
            g.fill();
            g.globalAlpha = 1;
          }

          const rows = new Map();
          function cell(tr, cls) { const td = document.createElement('td'); if (cls) td.className = cls; tr.appendChild(td); return td; }
          function makeRow(path) {
            const tr = document.createElement('tr');
            tr.dataset.path = path;
            const r = { tr };
            const feed = cell(tr);
            r.path = document.createElement('div'); r.path.className = 'path'; feed.appendChild(r.path);
            r.name = document.createElement('div'); r.name.className = 'muted'; feed.appendChild(r.name);
            const up = cell(tr);
            r.badge = document.createElement('span'); up.appendChild(r.badge);
            r.url = document.createElement('span'); r.url.className = 'url'; up.appendChild(r.url);
            r.lastId = cell(tr, 'mono');
            r.clients = cell(tr, 'num c-clients');
            r.events = cell(tr, 'num c-events-rate');
            r.deliveries = cell(tr, 'num c-deliveries-rate');
            const replay = cell(tr);
            r.bar = document.createElement('div'); r.bar.className = 'bar';
            r.fill = document.createElement('span'); r.bar.appendChild(r.fill); replay.appendChild(r.bar);
            r.replay = document.createElement('div'); r.replay.className = 'muted c-replay'; replay.appendChild(r.replay);
            r.gaps = cell(tr, 'num');
            r.reconnects = cell(tr, 'num');
            r.evictions = cell(tr, 'num');
            r.idle = cell(tr, 'num');
            return r;
          }

          function render(s) {
            const n = Number(body.dataset.samples) + 1;
            body.dataset.samples = String(n);
            if (n === 1) body.dataset.firstEventsIn = String(s.totals.events_in);
            body.dataset.eventsIn = String(s.totals.events_in);
            $('main').classList.remove('stale');
            const ready = $('ready');
            ready.hidden = s.ready;
            set('updated', 'updated ' + new Date(s.time).toLocaleTimeString() + (s.interval_s ? ' · every ' + s.interval_s.toFixed(1) + ' s' : ''));

            const t = s.totals;
            set('t-clients', int(s.connected_clients));
            set('t-feeds', s.feeds.length + (s.feeds.length === 1 ? ' open feed' : ' open feeds'));
            set('t-events-rate', rate(s.rates.events_in));
            set('t-events', int(t.events_in));
            set('t-deliveries-rate', rate(s.rates.deliveries));
            set('t-deliveries', int(t.deliveries));
            set('t-bytes-rate', s.rates.bytes_out === null ? '—' : bytes(s.rates.bytes_out));
            set('t-bytes', bytes(t.bytes_out));
            set('t-queued', bytes(s.queued_bytes));
            set('t-keepalives', int(t.keepalives));
            set('t-evictions', int(t.evictions.max_queue + t.evictions.max_lag));
            set('t-ev-queue', int(t.evictions.max_queue));
            set('t-ev-lag', int(t.evictions.max_lag));
            set('t-replays', int(t.replays));
            set('t-gaps', int(t.replay_gaps));
            set('t-reconnects', int(t.upstream_reconnects));
            const states = {};
            s.feeds.forEach((f) => { states[f.upstream_state] = (states[f.upstream_state] || 0) + 1; });
            set('t-states', Object.keys(states).sort().map((k) => states[k] + ' ' + k).join(' · ') || 'no open feed');
            if (s.rates.events_in !== null) {
              history.events.push(s.rates.events_in); history.deliveries.push(s.rates.deliveries); history.bytes.push(s.rates.bytes_out);
              if (history.events.length > 60) { history.events.shift(); history.deliveries.shift(); history.bytes.shift(); }
            }
            spark('spark-events', history.events);
            spark('spark-deliveries', history.deliveries);
            spark('spark-bytes', history.bytes);

            const defs = new Map(s.definitions.map((d) => [d.name, d]));
            const tbody = $('feeds');
            const seen = new Set();
            if (s.feeds.length === 0) {
              rows.clear();
              tbody.replaceChildren();
              const tr = document.createElement('tr');
              const td = cell(tr, 'empty'); td.colSpan = 11; td.textContent = 'no open feed (on-demand feeds open with their first client)';
              tbody.appendChild(tr);
              return;
            }
            if (rows.size === 0) tbody.replaceChildren();
            s.feeds.forEach((f, index) => {
              seen.add(f.path);
              let r = rows.get(f.path);
              if (!r) { r = makeRow(f.path); rows.set(f.path, r); }
              if (tbody.children[index] !== r.tr) tbody.insertBefore(r.tr, tbody.children[index] || null);
              const d = defs.get(f.name) || { open_feeds: 1, deliveries_per_s: null, evictions: { max_queue: 0, max_lag: 0 } };
              const shared = d.open_feeds > 1 ? 'Σ ' : '';
              text(r.path, f.path);
              text(r.name, f.name !== f.path ? 'feed ' + f.name : '');
              r.badge.className = 'badge ' + f.upstream_state;
              text(r.badge, f.upstream_state);
              text(r.url, f.upstream_url);
              r.url.title = f.upstream_url;
              text(r.lastId, f.last_event_id || '—');
              r.lastId.title = f.last_event_id;
              text(r.clients, int(f.clients));
              text(r.events, rate(f.events_per_s));
              r.events.title = int(f.events_in) + ' events in';
              text(r.deliveries, shared + rate(d.deliveries_per_s));
              r.deliveries.title = shared ? 'total of feed ' + f.name + ' over ' + d.open_feeds + ' open instances' : '';
              const max = f.replay_max_events;
              const fill = max ? Math.min(1, f.replay_events / max) : 0;
              r.fill.style.width = (fill * 100).toFixed(1) + '%';
              r.bar.classList.toggle('full', fill >= 0.999);
              r.bar.title = Math.round(fill * 100) + '% of replay.max_events';
              text(r.replay, int(f.replay_events) + ' / ' + int(max) + ' · ' + bytes(f.replay_bytes));
              r.replay.title = bytes(f.replay_bytes) + (f.replay_max_bytes ? ' of ' + bytes(f.replay_max_bytes) + ' (replay.max_bytes)' : '');
              text(r.gaps, int(f.replay_gaps));
              text(r.reconnects, int(f.upstream_reconnects));
              const ev = d.evictions.max_queue + d.evictions.max_lag;
              text(r.evictions, shared + int(d.evictions.max_queue) + ' / ' + int(d.evictions.max_lag));
              r.evictions.classList.toggle('warn', ev > 0);
              r.evictions.title = 'max_queue / max_lag' + (shared ? ', total of feed ' + f.name : '');
              text(r.idle, ago(f.idle_s));
            });
            for (const [path, r] of rows) {
              if (!seen.has(path)) { r.tr.remove(); rows.delete(path); }
            }
          }

          function state(name, label) {
            body.dataset.state = name;
            const conn = $('conn');
            conn.className = 'pill ' + (name === 'live' ? 'on' : name === 'connecting' ? 'wait' : 'off');
            conn.textContent = label;
            if (name !== 'live') $('main').classList.add('stale');
          }

          const interval = new URLSearchParams(location.search).get('interval_ms');
          const source = new EventSource('api/status/stream' + (interval ? '?interval_ms=' + encodeURIComponent(interval) : ''));
          source.onopen = () => state('live', 'live');
          source.onerror = () => state('disconnected', source.readyState === EventSource.CLOSED ? 'disconnected' : 'disconnected · retrying');
          source.onmessage = (e) => {
            let s;
            try { s = JSON.parse(e.data); } catch (err) { return; }
            if (body.dataset.state !== 'live') state('live', 'live');
            render(s);
          };
        })();
        </script>
        </body>
        </html>
        """#
}
