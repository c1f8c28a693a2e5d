/**
 * The hub's live dashboard: one HTML page with its CSS and script inline, served by the gateway
 * at `/`. It loads nothing from anywhere else: it polls the gateway's `status` (a JSON
 * {@linkcode HubStatus}) every second and draws its charts itself, as SVG.
 *
 * Everything the page shows that came from a peer (routing ids, addresses, reasons) is set as
 * text, never as markup.
 *
 * @module
 */

/**
 * The page. Its script is plain ES2017 (no build step); elements a test reads carry
 * `data-testid` attributes.
 */
export const DASHBOARD_HTML: string = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gibbs hub</title>
<link rel="icon" href="data:,">
<style>
  :root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --bg: #f7f8fa; --card: #fff;
    --blue: #2563eb; --orange: #ea580c; --red: #dc2626; --green: #16a34a; --violet: #7c3aed; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
    color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px;
    background: var(--card); border-bottom: 1px solid var(--line); }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: var(--muted); }
  #live { margin-left: auto; color: var(--muted); }
  #live.ok::before { content: "●"; color: var(--green); margin-right: 6px; }
  #live.down::before { content: "●"; color: var(--red); margin-right: 6px; }
  main { padding: 16px 24px 32px; max-width: 1400px; }
  .tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr));
    gap: 12px; margin-bottom: 16px; }
  .tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
    padding: 10px 14px; }
  .tile .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
    letter-spacing: .04em; }
  .tile .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums;
    white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .tile .sub { color: var(--muted); font-size: 12px; }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 12px;
    margin-bottom: 16px; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
    padding: 12px 14px; }
  .card h2 { font-size: 13px; margin: 0 0 6px; font-weight: 600; }
  .legend { color: var(--muted); font-size: 12px; font-weight: 400; margin-left: 8px; }
  .legend i { display: inline-block; width: 10px; height: 3px; margin: 0 4px 3px 8px;
    vertical-align: middle; }
  svg { width: 100%; height: 160px; display: block; }
  svg text { font-size: 10px; fill: var(--muted); }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
    white-space: nowrap; }
  th { color: var(--muted); font-weight: 500; font-size: 12px; }
  td.num, th.num { text-align: right; }
  td.id { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
  tr.quarantined td { color: var(--red); }
  .grid2 { display: grid; grid-template-columns: 2fr 1fr; gap: 12px; margin-top: 12px; }
  .events td.type { font-weight: 500; }
  .events td.why { white-space: normal; overflow-wrap: anywhere; }
  .grid2 > section { min-width: 0; }
  .events tr.bad td.type { color: var(--red); }
  .events tr.good td.type { color: var(--green); }
  .empty { color: var(--muted); padding: 8px; }
  @media (max-width: 900px) { .grid2 { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header>
  <h1>gibbs hub</h1>
  <span class="meta" id="endpoint"></span>
  <span class="meta" id="uptime"></span>
  <span id="live">connecting…</span>
</header>
<main>
  <section class="tiles">
    <div class="tile"><div class="label">Workers</div>
      <div class="value" data-testid="workers-count" id="t-workers">–</div>
      <div class="sub" id="t-busy"></div></div>
    <div class="tile"><div class="label">Queue depth</div>
      <div class="value" data-testid="queue-depth" id="t-queued">–</div>
      <div class="sub" id="t-pending"></div></div>
    <div class="tile"><div class="label">Requests</div>
      <div class="value" data-testid="requests-total" id="t-requests">–</div>
      <div class="sub" id="t-ok"></div></div>
    <div class="tile"><div class="label">Throughput</div>
      <div class="value" id="t-rate">–</div><div class="sub">req/s, last 10 s</div></div>
    <div class="tile"><div class="label">Latency p50</div>
      <div class="value" id="t-latency">–</div><div class="sub" id="t-window">last 60 s</div></div>
    <div class="tile"><div class="label">Errors</div>
      <div class="value" data-testid="errors-total" id="t-errors">–</div>
      <div class="sub" id="t-redispatched"></div></div>
    <div class="tile"><div class="label">Traffic</div>
      <div class="value" id="t-bytes-in">–</div><div class="sub" id="t-bytes-out">in</div></div>
  </section>
  <section class="charts">
    <div class="card"><h2>Throughput, req/s<span class="legend"><i style="background:var(--blue)"></i>ended
      <i style="background:var(--red)"></i>errors</span></h2><svg id="c-rate"></svg></div>
    <div class="card"><h2>Latency, ms<span class="legend"><i style="background:var(--blue)"></i>p50
      <i style="background:var(--orange)"></i>p99</span></h2><svg id="c-latency"></svg></div>
    <div class="card"><h2>Queue and workers<span class="legend"><i style="background:var(--violet)"></i>queue depth
      <i style="background:var(--green)"></i>workers</span></h2><svg id="c-queue"></svg></div>
  </section>
  <section class="card">
    <h2>Workers <span class="legend" id="workers-note"></span></h2>
    <table id="workers" data-testid="workers-table">
      <thead><tr><th>id</th><th>address</th><th>runtime</th><th>service</th>
        <th class="num">capacity</th><th class="num">held</th><th class="num">served</th>
        <th class="num">mean</th><th class="num">last heard</th><th class="num">connected</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <div class="grid2">
    <section class="card events">
      <h2>Recent events <span class="legend">joins, leaves and drops with their reasons</span></h2>
      <table id="events" data-testid="events-table"><thead><tr><th>time</th><th>event</th>
        <th>who</th><th>why</th></tr></thead><tbody></tbody></table>
    </section>
    <section class="card">
      <h2>Requests by outcome</h2>
      <table id="outcomes" data-testid="outcomes-table"><tbody></tbody></table>
    </section>
  </div>
</main>
<script>
"use strict";
(function () {
  var params = new URLSearchParams(location.search);
  var interval = Number(params.get("interval")) || 1000;
  var NS = "http://www.w3.org/2000/svg";
  var $ = function (id) { return document.getElementById(id); };
  var fmt = function (n, digits) {
    if (n === null || n === undefined || !isFinite(n)) return "–";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits || 0 });
  };
  var ms = function (x) {
    if (x === null || x === undefined || !isFinite(x)) return "–";
    if (x >= 1000) return fmt(x / 1000, 2) + " s";
    if (x >= 10) return fmt(x, 0) + " ms";
    return fmt(x, 2) + " ms";
  };
  var bytes = function (n) {
    var units = ["B", "kB", "MB", "GB", "TB"];
    var i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return fmt(n, i === 0 ? 0 : 1) + " " + units[i];
  };
  var ago = function (msAgo) {
    if (msAgo === null || msAgo === undefined) return "–";
    return msAgo < 1000 ? fmt(msAgo) + " ms ago" : fmt(msAgo / 1000, 1) + " s ago";
  };
  var duration = function (s) {
    if (s < 60) return fmt(s, 0) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  };
  var cell = function (tr, text, cls, title) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    if (title) td.title = title;
    tr.appendChild(td);
    return td;
  };
  // A ZMTP error's reason already starts with its code; "closed" and "error" say nothing more.
  var reasonOf = function (e) {
    var reason = e.reason || "";
    var code = e.code;
    if (!code || code === "closed" || code === "error" || reason.indexOf(code) === 0) return reason;
    return code + ": " + reason;
  };
  var sum = function (xs) { var s = 0; for (var i = 0; i < xs.length; i++) s += xs[i] || 0; return s; };

  /** Draws series (arrays of numbers or nulls, oldest first) as lines on an SVG. */
  function chart(svg, series, colors, unit) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var w = svg.clientWidth || 400, h = svg.clientHeight || 160;
    var left = 44, right = 8, top = 8, bottom = 18;
    var n = series[0].length;
    var max = 0;
    series.forEach(function (s) { s.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    if (max === 0) max = 1;
    var nice = Math.pow(10, Math.floor(Math.log10(max)));
    max = Math.ceil(max / nice) * nice;
    var x = function (i) { return left + (w - left - right) * (n <= 1 ? 1 : i / (n - 1)); };
    var y = function (v) { return top + (h - top - bottom) * (1 - v / max); };
    var el = function (name, attrs, text) {
      var e = document.createElementNS(NS, name);
      for (var k in attrs) e.setAttribute(k, attrs[k]);
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e);
      return e;
    };
    for (var g = 0; g <= 4; g++) {
      var v = (max * g) / 4;
      el("line", { x1: left, x2: w - right, y1: y(v), y2: y(v), stroke: "#e4e7ec" });
      el("text", { x: left - 6, y: y(v) + 3, "text-anchor": "end" }, fmt(v, v < 10 ? 2 : 0) + (g === 4 ? unit : ""));
    }
    el("text", { x: left, y: h - 4 }, n >= 120 ? Math.round(n / 60) + " min ago" : n + " s ago");
    el("text", { x: w - right, y: h - 4, "text-anchor": "end" }, "now");
    series.forEach(function (s, k) {
      var d = "", pen = false;
      for (var i = 0; i < n; i++) {
        if (s[i] === null) { pen = false; continue; }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(s[i]).toFixed(1);
        pen = true;
      }
      if (d) el("path", { d: d, fill: "none", stroke: colors[k], "stroke-width": 1.5 });
    });
  }

  function render(s) {
    var m = s.metrics;
    var svc = m.services[0];
    $("endpoint").textContent = "workers connect to " + (s.endpoint || "?");
    $("uptime").textContent = "up " + duration(m.uptimeSeconds);
    $("t-workers").textContent = fmt(m.workers);
    $("t-busy").textContent = fmt(m.busy) + " busy" + (m.quarantined ? ", " + m.quarantined + " quarantined" : "");
    $("t-queued").textContent = fmt(svc.queued);
    $("t-pending").textContent = fmt(svc.pending) + " pending";
    var total = 0, errors = 0;
    for (var k in svc.requests) { total += svc.requests[k]; if (k !== "ok") errors += svc.requests[k]; }
    $("t-requests").textContent = fmt(total);
    $("t-ok").textContent = fmt(svc.requests.ok) + " ok";
    $("t-errors").textContent = fmt(errors);
    $("t-redispatched").textContent = fmt(svc.redispatched) + " re-dispatched";
    $("t-bytes-in").textContent = bytes(m.bytesReceived) + " in";
    $("t-bytes-out").textContent = bytes(m.bytesSent) + " out";
    var hist = s.history;
    // The current second is still filling: rates and charts stop at the last whole one. A young
    // hub's charts cover its life so far (at least a minute), not minutes it did not live.
    var span = Math.min(hist.seconds - 1, Math.max(60, Math.ceil(m.uptimeSeconds)));
    var whole = function (xs) { return xs.slice(0, xs.length - 1).slice(-span); };
    $("t-rate").textContent = fmt(sum(whole(hist.requests).slice(-10)) / 10, 1);
    var win = hist.window;
    $("t-latency").textContent = ms(win.p50Ms);
    $("t-window").textContent = "p99 " + ms(win.p99Ms) + ", last " + win.seconds + " s (" +
      fmt(win.requests) + " requests)";
    chart($("c-rate"), [whole(hist.requests), whole(hist.errors)], ["#2563eb", "#dc2626"], "");
    chart($("c-latency"), [whole(hist.p50Ms), whole(hist.p99Ms)], ["#2563eb", "#ea580c"], " ms");
    chart($("c-queue"), [whole(hist.queued), whole(hist.workers)], ["#7c3aed", "#16a34a"], "");

    var tbody = $("workers").tBodies[0];
    tbody.textContent = "";
    s.workers.forEach(function (w) {
      var tr = document.createElement("tr");
      if (w.quarantined) tr.className = "quarantined";
      cell(tr, w.id.length > 14 ? w.id.slice(0, 12) + "…" : w.id, "id", w.id);
      cell(tr, w.address || "–");
      cell(tr, w.runtime + (w.quarantined ? " (quarantined)" : ""));
      cell(tr, w.service);
      cell(tr, fmt(w.capacity), "num");
      cell(tr, fmt(w.held), "num");
      cell(tr, fmt(w.served), "num");
      cell(tr, ms(w.meanMs), "num");
      cell(tr, ago(w.lastHeardMs), "num");
      cell(tr, duration(w.connectedSeconds), "num");
      tbody.appendChild(tr);
    });
    if (s.workers.length === 0) {
      var tr = document.createElement("tr");
      var td = cell(tr, "no worker connected", "empty");
      td.colSpan = 10;
      tbody.appendChild(tr);
    }
    $("workers-note").textContent = s.workersTotal > s.workers.length
      ? "showing " + s.workers.length + " of " + s.workersTotal : "";

    var ebody = $("events").tBodies[0];
    ebody.textContent = "";
    var events = s.events.slice(-30).reverse();
    events.forEach(function (e) {
      var tr = document.createElement("tr");
      var bad = e.type !== "worker.joined" && !(e.type === "worker.left" && e.code === "closed");
      tr.className = e.type === "worker.joined" ? "good" : bad ? "bad" : "";
      cell(tr, new Date(e.time).toLocaleTimeString());
      cell(tr, e.type, "type");
      var who = e.worker || e.remote || "";
      cell(tr, who.length > 14 ? who.slice(0, 12) + "…" : who, "id", (e.worker || "") + " " + (e.remote || ""));
      var why = e.type === "worker.joined"
        ? e.runtime + ", capacity " + e.capacity + (e.remote ? ", from " + e.remote : "")
        : e.type === "request.redispatched" ? "request " + e.reqId + ": " + e.reason
        : reasonOf(e);
      cell(tr, why, "why");
      ebody.appendChild(tr);
    });
    if (events.length === 0) {
      var tr2 = document.createElement("tr");
      cell(tr2, "nothing yet", "empty").colSpan = 4;
      ebody.appendChild(tr2);
    }

    var obody = $("outcomes").tBodies[0];
    obody.textContent = "";
    Object.keys(svc.requests).forEach(function (k) {
      var tr = document.createElement("tr");
      cell(tr, k.replace("_", " "));
      cell(tr, fmt(svc.requests[k]), "num");
      obody.appendChild(tr);
    });
  }

  var live = $("live");
  function poll() {
    fetch("status", { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (s) {
      render(s);
      live.className = "ok";
      live.textContent = "live, " + new Date(s.time).toLocaleTimeString();
    }).catch(function (e) {
      live.className = "down";
      live.textContent = "hub unreachable (" + e.message + ")";
    }).then(function () { setTimeout(poll, interval); });
  }
  poll();
})();
</script>
</body>
</html>
`;
