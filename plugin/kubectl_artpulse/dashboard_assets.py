r"""The dashboard's page, style sheet and script, as strings (the zipapp ships only ``*.py``).

No CDN, no npm, no inline script or style (the Content-Security-Policy is ``default-src
'self'``): ``INDEX_HTML`` loads ``/static/app.css`` and ``/static/app.js``; the one value put
into the page is the session's CSRF token (URL-safe base64, so nothing to escape). The script
builds every element with ``createElement`` and ``textContent`` (never ``innerHTML``), so a
name, label or message from the cluster is always shown as text. It polls ``/api/models`` (the
list) or ``/api/models/<ns>/<name>`` (the detail) every few seconds and draws the timeline as
inline SVG: the canary weight and the tracks' p95 on twin axes with the rollout's moments
marked (as ``hack/demo.py`` plots it), and the error rate and drift beneath. Served by
``kubectl_artpulse.dashboard``.
"""

from __future__ import annotations

__all__ = ["APP_CSS", "APP_JS", "INDEX_HTML"]

INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="artpulse-csrf" content="{{csrf}}">
<title>ArtPulse rollouts</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="#/">ArtPulse rollouts</a>
  <span id="scope" class="muted"></span>
  <span id="updated" class="muted right"></span>
</header>
<div id="error" class="banner error" hidden></div>
<main id="view"><p class="muted">Loading&hellip;</p></main>
</body>
</html>
"""

APP_CSS = """
:root { --fg: #1d2430; --muted: #6b7280; --line: #e3e6eb; --bg: #f6f7f9; --card: #fff;
  --ok: #1a7f37; --bad: #c62828; --progress: #b26a00; --paused: #0b6e99; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header.top { display: flex; align-items: baseline; gap: 16px; padding: 12px 24px;
  background: #1d2430; color: #fff; }
header.top .brand { color: #fff; font-weight: 600; font-size: 16px; text-decoration: none; }
header.top .muted { color: #b8c0cc; }
.right { margin-left: auto; }
main { padding: 16px 24px 40px; max-width: 1400px; }
.muted { color: var(--muted); }
.banner { padding: 8px 24px; }
.banner.error { background: #fdecea; color: var(--bad); border-bottom: 1px solid #f5c2c0; }
.note { background: #fff8e1; border: 1px solid #f0d98c; padding: 8px 12px; border-radius: 4px;
  margin: 8px 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
  padding: 12px 16px; margin: 12px 0; }
.card h3 { margin: 0 0 8px; font-size: 14px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.models { background: var(--card); border: 1px solid var(--line); }
table.models tr:hover td { background: #fafbfc; }
a { color: #0b57d0; }
.name { font-weight: 600; overflow-wrap: anywhere; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; color: #fff; white-space: nowrap; }
.phase-ok { background: var(--ok); } .phase-bad { background: var(--bad); }
.phase-progress { background: var(--progress); } .phase-paused { background: var(--paused); }
.phase-unknown { background: var(--muted); }
.ready { font-weight: 700; font-size: 12px; white-space: nowrap; }
.ready.yes { color: var(--ok); } .ready.no { color: var(--bad); }
.verdict-Pass { color: var(--ok); font-weight: 600; }
.verdict-Fail, .verdict-Error { color: var(--bad); font-weight: 600; }
.verdict-Inconclusive { color: var(--progress); font-weight: 600; }
.weights { display: grid; grid-template-columns: auto 84px auto; gap: 2px 6px;
  align-items: center; white-space: nowrap; }
.weights svg { display: block; }
.head { display: flex; flex-wrap: wrap; align-items: center; gap: 12px; }
.head h2 { margin: 0; font-size: 20px; overflow-wrap: anywhere; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 24px; margin-top: 8px; }
.facts div span:first-child { color: var(--muted); margin-right: 4px; }
.actions { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-top: 12px; }
button { font: inherit; padding: 5px 14px; border-radius: 4px; border: 1px solid #9aa4b2;
  background: #fff; cursor: pointer; }
button:hover:enabled { background: #eef2f7; }
button:disabled { color: #a0a7b1; border-color: #d6dae0; cursor: not-allowed; }
button.danger:enabled { color: var(--bad); border-color: var(--bad); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px;
  align-items: start; }
.grid2 .card { margin: 0; }
.chart svg { width: 100%; height: auto; display: block; }
.chart .axis line, .chart .axis path { stroke: #9aa4b2; }
.chart .grid line { stroke: #eef0f3; }
.chart text { font-size: 11px; fill: #4b5563; }
.chart .mark line { stroke: #9aa4b2; stroke-dasharray: 3 3; }
.chart .mark text { fill: #6b7280; font-size: 10px; }
.chart .series path { fill: none; stroke-width: 2; }
.chart .empty { fill: #9aa4b2; font-size: 13px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin-top: 6px; font-size: 12px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; white-space: nowrap; }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
.kv dt { color: var(--muted); } .kv dd { margin: 0; overflow-wrap: anywhere; }
.result { margin-left: 8px; }
.result.ok { color: var(--ok); } .result.bad { color: var(--bad); }
"""

APP_JS = r"""
"use strict";
(function () {
  const CSRF = document.querySelector('meta[name="artpulse-csrf"]').getAttribute("content");
  const SVG_NS = "http://www.w3.org/2000/svg";
  const LIST_POLL_MS = 3000;
  const DETAIL_POLL_MS = 5000;
  const ACTIONS = ["promote", "promote-full", "abort", "retry", "pause", "resume"];
  const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
  const PHASE_CLASS = {
    Stable: "ok", RolledBack: "bad", Degraded: "bad", Failed: "bad", Paused: "paused",
    Pending: "progress", Shadowing: "progress", Progressing: "progress", Promoting: "progress",
  };
  const TRACK_COLOURS = { stable: "#2ca02c", canary: "#d62728", blue: "#1f77b4", green: "#17becf" };
  const EXTRA_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
  const WEIGHT_COLOUR = "#3b5bdb";
  let timer = null;
  let shown = "";  // the route the view shows

  // --- building the DOM: text only, never markup -------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  function fmt(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "-";
    const n = Number(value);
    return Number.isInteger(n) ? String(n) : n.toPrecision(digits || 3);
  }
  function pct(value) {
    if (value === null || value === undefined) return "-";
    const p = 100 * Number(value);
    return (p === 0 ? "0" : Number(p.toPrecision(2)).toString()) + "%";
  }
  function when(iso) {
    if (!iso) return "-";
    const t = Date.parse(iso);
    return Number.isNaN(t) ? String(iso) : new Date(t).toLocaleString();
  }
  function phasePill(phase) {
    return el("span", { class: "pill phase-" + (PHASE_CLASS[phase] || "unknown") }, phase || "-");
  }
  function readyBadge(ready) {
    return el("span", { class: "ready " + (ready.ready ? "yes" : "no"), title: ready.message },
      ready.ready ? "READY" : "NOT READY");
  }
  function verdict(value) {
    const known = ["Pass", "Fail", "Inconclusive", "Error"].includes(value);
    return el("span", { class: known ? "verdict-" + value : "" }, value || "-");
  }
  function modelHref(m) { return "#/model/" + encodeURIComponent(m.namespace) + "/" + encodeURIComponent(m.name); }
  function linkable(m) { return NAME.test(m.namespace) && NAME.test(m.name); }
  function table(headers, rows, rowAttrs) {
    return el("table", rowAttrs || {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
  }
  function card(title, ...children) { return el("section", { class: "card" }, el("h3", {}, title), children); }
  function kv(pairs) {
    return el("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  // --- talking to the server ---------------------------------------------------------------
  async function api(path, options) {
    const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (response.status === 401) throw new Error("not signed in (or the dashboard was restarted): open the URL kubectl artpulse dashboard printed");
    if (!response.ok) throw new Error((body && body.error) || ("HTTP " + response.status));
    return body;
  }
  function showError(message) {
    const banner = document.getElementById("error");
    banner.textContent = message || "";
    banner.hidden = !message;
  }
  function stamp(text) { document.getElementById("updated").textContent = text; }

  // --- the list ----------------------------------------------------------------------------
  function weightsCell(tracks) {
    if (!tracks.length) return "-";
    return el("div", { class: "weights" }, tracks.flatMap((t) => [
      el("span", {}, t.name + (t.version ? " v" + t.version : "")),
      svg("svg", { width: 84, height: 10, viewBox: "0 0 84 10", role: "img" },
        svg("rect", { x: 0, y: 1, width: 84, height: 8, rx: 2, fill: "#e9ecef" }),
        svg("rect", { x: 0, y: 1, width: Math.max(0, Math.min(100, t.weight)) * 0.84, height: 8, rx: 2,
          fill: TRACK_COLOURS[t.name] || "#6c757d" })),
      el("span", { class: "num" }, fmt(t.weight) + "%" + (t.scaled ? "" : " (down)")),
    ]));
  }
  function renderList(data) {
    document.getElementById("scope").textContent = data.allNamespaces
      ? "all namespaces" : "namespace " + (data.namespace || "(the context's)");
    const view = document.getElementById("view");
    if (!data.models.length) {
      view.replaceChildren(el("p", { class: "muted" }, "No ArtPulseModels found."));
      return;
    }
    const rows = data.models.map((m) => el("tr", { "data-model": m.namespace + "/" + m.name },
      el("td", {}, m.namespace),
      el("td", { class: "name" }, linkable(m) ? el("a", { href: modelHref(m) }, m.name) : m.name),
      el("td", {}, phasePill(m.phase), m.pendingAction ? el("div", { class: "muted" }, "pending: " + m.pendingAction) : null),
      el("td", {}, m.strategy),
      el("td", {}, m.stable || "-"),
      el("td", {}, m.candidate || "-"),
      el("td", {}, weightsCell(m.tracks)),
      el("td", {}, m.step || "-"),
      el("td", {}, verdict(m.check.verdict)),
      el("td", { class: "num" }, fmt(m.check.p95LatencyMs)),
      el("td", { class: "num" }, pct(m.check.errorRate)),
      el("td", { class: "num" }, fmt(m.check.driftScore)),
      el("td", {}, readyBadge(m.ready))));
    view.replaceChildren(table(
      ["Namespace", "Name", "Phase", "Strategy", "Stable", "Candidate", "Tracks and weights",
        "Step", "Check", "p95 ms", "Errors", "Drift", "Ready"], rows, { class: "models", id: "models" }));
  }

  // --- the timeline, as SVG ----------------------------------------------------------------
  function ticks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }
  function clock(t) {
    const d = new Date(t * 1000);
    return d.toTimeString().slice(0, 8);
  }
  // series: [{label, colour, points: [[t, v]], axis: "left"|"right", step, dash}]
  function chart(opts) {
    const W = 720, H = 280, L = 70, R = 64, T = 16, B = 30;
    const t0 = opts.t0, t1 = Math.max(opts.t1, opts.t0 + 1);
    const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
    const extent = (axis, fixed) => {
      if (fixed) return fixed;
      let hi = 0;
      for (const s of opts.series) if (s.axis === axis) for (const p of s.points) if (p[0] >= t0 && p[0] <= t1) hi = Math.max(hi, p[1]);
      return [0, hi > 0 ? hi * 1.15 : 1];
    };
    const left = extent("left", opts.leftRange), right = extent("right", opts.rightRange);
    const y = (axis) => (v) => {
      const [lo, hi] = axis === "left" ? left : right;
      return H - B - (H - T - B) * (v - lo) / (hi - lo);
    };
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": opts.title, class: "timeline" });
    const grid = svg("g", { class: "grid" });
    const axis = svg("g", { class: "axis" });
    for (const v of ticks(left[0], left[1], 5)) {
      const py = y("left")(v);
      grid.append(svg("line", { x1: L, x2: W - R, y1: py, y2: py }));
      axis.append(svg("text", { x: L - 6, y: py + 4, "text-anchor": "end" }, opts.leftFormat ? opts.leftFormat(v) : fmt(v)));
    }
    if (opts.series.some((s) => s.axis === "right")) {
      for (const v of ticks(right[0], right[1], 5)) {
        axis.append(svg("text", { x: W - R + 6, y: y("right")(v) + 4 }, opts.rightFormat ? opts.rightFormat(v) : fmt(v)));
      }
      axis.append(svg("text", { x: W - 12, y: T + (H - T - B) / 2, "text-anchor": "middle",
        transform: "rotate(90 " + (W - 12) + " " + (T + (H - T - B) / 2) + ")" }, opts.rightLabel || ""));
    }
    axis.append(svg("text", { x: 12, y: T + (H - T - B) / 2, "text-anchor": "middle",
      transform: "rotate(-90 12 " + (T + (H - T - B) / 2) + ")" }, opts.leftLabel || ""));
    for (const t of ticks(t0, t1, 6)) {
      axis.append(svg("line", { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4 }));
      axis.append(svg("text", { x: x(t), y: H - B + 16, "text-anchor": "middle" }, clock(t)));
    }
    axis.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B }));
    axis.append(svg("line", { x1: L, x2: L, y1: T, y2: H - B }));
    root.append(grid, axis);
    const marks = svg("g", { class: "marks" });
    for (const m of opts.marks || []) {
      if (m.t < t0 || m.t > t1) continue;
      marks.append(svg("g", { class: "mark" },
        svg("line", { x1: x(m.t), x2: x(m.t), y1: T, y2: H - B }),
        svg("text", { x: x(m.t) - 3, y: T + 2, "text-anchor": "end", transform: "rotate(-90 " + (x(m.t) - 3) + " " + (T + 2) + ")" }, m.text)));
    }
    root.append(marks);
    let drawn = 0;
    for (const s of opts.series) {
      const pts = s.points.filter((p) => p[0] >= t0 && p[0] <= t1);
      if (!pts.length) continue;
      const sy = y(s.axis);
      let d = "";
      pts.forEach((p, i) => {
        if (i === 0) d += "M" + x(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1);
        else if (s.step) d += "H" + x(p[0]).toFixed(1) + "V" + sy(p[1]).toFixed(1);
        else d += "L" + x(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1);
      });
      if (s.step && s.extend) d += "H" + x(t1).toFixed(1);
      const g = svg("g", { class: "series", "data-series": s.label },
        svg("path", { d: d, stroke: s.colour, "stroke-dasharray": s.dash || null }));
      for (const p of pts) {
        g.append(svg("circle", { class: "point", cx: x(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: s.step ? 2 : 2.5, fill: s.colour },
          svg("title", {}, s.label + ": " + fmt(p[1]) + " at " + clock(p[0]))));
      }
      root.append(g);
      drawn += 1;
    }
    if (!drawn) root.append(svg("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data in this window yet"));
    const legend = el("div", { class: "legend" }, opts.series.map((s) => el("span", {},
      svg("svg", { width: 18, height: 8 }, svg("line", { x1: 0, x2: 18, y1: 4, y2: 4, stroke: s.colour, "stroke-width": 3, "stroke-dasharray": s.dash || null })),
      s.label)));
    return el("div", { class: "chart", id: opts.id }, root, legend);
  }
  function colourOf(track, i) { return TRACK_COLOURS[track] || EXTRA_COLOURS[i % EXTRA_COLOURS.length]; }
  function timelines(d) {
    const prom = d.prometheus || {};
    const now = d.time;
    const marks = (d.marks || []).map((m) => ({ t: Date.parse(m.time) / 1000, text: m.text })).filter((m) => !Number.isNaN(m.t));
    const samples = d.samples || [];
    let t0 = prom.ok ? prom.start : Math.min(now - 300, ...samples.map((s) => s.t));
    const top = [], bottom = [];
    const series = prom.ok ? prom.series : [];
    series.forEach((s, i) => {
      if (s.metric === "weight") top.push({ label: "canary weight (%)", colour: WEIGHT_COLOUR, points: s.points, axis: "left", step: true, extend: true });
      if (s.metric === "p95_latency_ms") top.push({ label: "p95 " + s.track + " (ms)", colour: colourOf(s.track, i), points: s.points, axis: "right" });
      if (s.metric === "error_rate") bottom.push({ label: "error rate " + s.track, colour: colourOf(s.track, i), points: s.points, axis: "left" });
      if (s.metric === "drift_score") bottom.push({ label: "drift " + s.track, colour: colourOf(s.track, i), points: s.points, axis: "right", dash: "5 3" });
    });
    // What this dashboard saw in the status since it started: every change of weight, and
    // every check the operator made (its gate values).
    const weight = samples.map((s) => [s.t, s.weight]);
    if (weight.length) weight.push([now, d.canaryWeight]);
    const checks = (key) => samples.filter((s) => s.checkTime && s[key] !== null).map((s) => [Date.parse(s.checkTime) / 1000 || s.t, s[key]]);
    if (!prom.ok) top.push({ label: "canary weight (%, status)", colour: WEIGHT_COLOUR, points: weight, axis: "left", step: true });
    top.push({ label: "p95 at checks (ms, status)", colour: "#444", points: checks("p95LatencyMs"), axis: "right", dash: "2 3" });
    bottom.push({ label: "error rate at checks (status)", colour: "#444", points: checks("errorRate"), axis: "left", dash: "2 3" });
    bottom.push({ label: "drift at checks (status)", colour: "#999", points: checks("driftScore"), axis: "right", dash: "2 3" });
    for (const m of marks) if (!prom.ok && m.t < t0 && m.t > now - 3600) t0 = m.t - 30;
    const common = { t0: t0, t1: now, marks: marks };
    return [
      chart(Object.assign({ id: "chart-weight", title: "canary weight and p95 latency", series: top, leftRange: [0, 100], leftLabel: "canary weight (%)", rightLabel: "p95 latency (ms)" }, common)),
      chart(Object.assign({ id: "chart-errors", title: "error rate and drift", series: bottom, leftLabel: "error rate", rightLabel: "drift score", leftFormat: pct }, common)),
    ];
  }

  // --- the detail view ---------------------------------------------------------------------
  async function act(d, action) {
    const result = document.getElementById("action-result");
    if (action === "abort" && !window.confirm("Abort the rollout of " + d.namespace + "/" + d.name + "? The candidate is rolled back now.")) return;
    result.className = "result"; result.textContent = action + " ...";
    try {
      await api("/api/models/" + encodeURIComponent(d.namespace) + "/" + encodeURIComponent(d.name) + "/actions", {
        method: "POST", headers: { "Content-Type": "application/json", "X-ArtPulse-CSRF": CSRF },
        body: JSON.stringify({ action: action, confirm: action === "abort" }),
      });
      result.className = "result ok"; result.textContent = action + " requested; the operator acts on it at its next look";
      setTimeout(refresh, 300);
    } catch (e) {
      result.className = "result bad"; result.textContent = action + " failed: " + e.message;
    }
  }
  function checkCard(a, th) {
    if (!a || !a.lastCheckTime) return card("Last check", el("p", { class: "muted" }, "No check yet."));
    const gate = (value, limit, show) => show(value) + (limit === null || limit === undefined ? "" : " (limit " + show(limit) + ")");
    const parts = [kv([
      ["Verdict", verdict(a.verdict)], ["When", when(a.lastCheckTime)],
      ["Measured", (a.track || "-") + " v" + (a.version || "-")],
      ["p95 latency", gate(a.p95LatencyMs, th.p95LatencyMs, (v) => fmt(v) + " ms")],
      ["Error rate", gate(a.errorRate, th.maxErrorRate, pct)],
      ["Drift", gate(a.driftScore, th.maxDriftScore, fmt)],
      ["Requests", fmt(a.requests)],
      ["p95 / stable", fmt(a.p95RatioToStable)], ["Shadow agreement", fmt(a.shadowAgreement)],
      ["Failed gates", (a.failedGates || []).join(", ") || "none"],
      ["Counters", "failed " + (a.failedChecks || 0) + ", inconclusive " + (a.inconclusiveChecks || 0) + ", errors in a row " + (a.errorStreak || 0) + ", passed in step " + (a.passedChecksInStep || 0)],
      ["Message", a.message || "-"],
    ])];
    const judge = a.judge;
    if (judge) {
      parts.push(el("h3", {}, "Judge evidence"), el("p", {}, verdict(judge.verdict), " ", judge.message || ""));
      const tests = Object.entries(judge.tests || {}).sort();
      parts.push(table(["Test", "e-value", "Threshold", "Result", "Candidate", "Stable", "Samples"], tests.map(([name, e]) => el("tr", {},
        el("td", {}, name), el("td", { class: "num" }, fmt(e.eValue)), el("td", { class: "num" }, fmt(e.threshold)),
        el("td", {}, e.regression ? "REGRESSION" : e.rejected ? "rejected" : "ok"),
        el("td", { class: "num" }, fmt(e.candidate)), el("td", { class: "num" }, fmt(e.stable)),
        el("td", {}, (e.samples || []).map((v) => fmt(v)).join(" vs "))))));
    }
    const metrics = Object.entries(a.metrics || {}).sort();
    if (metrics.length) {
      parts.push(el("h3", {}, "Custom metrics"));
      parts.push(table(["Metric", "Verdict", "Value", "Message"], metrics.map(([name, m]) => el("tr", {},
        el("td", {}, name + (m.dryRun ? " (dry run)" : "")), el("td", {}, verdict(m.verdict)),
        el("td", { class: "num" }, fmt(m.value)), el("td", {}, m.message || "")))));
    }
    return card("Last check", parts);
  }
  function renderDetail(d) {
    const result = el("span", { id: "action-result", class: "result" });
    const buttons = ACTIONS.map((a) => el("button", {
      id: "btn-" + a, type: "button", class: a === "abort" ? "danger" : null, disabled: !d.actions[a],
      title: d.actions[a] ? a : "the operator would not " + a + " now",
      onclick: () => act(d, a),
    }, a[0].toUpperCase() + a.slice(1)));
    const prom = d.prometheus || {};
    const note = prom.ok ? null : el("div", { class: "note", id: "prometheus-note" },
      el("div", {}, prom.error || "Prometheus is not reachable."),
      el("div", { class: "muted" }, "The plot shows what this dashboard read from the status since it started."));
    const view = document.getElementById("view");
    view.replaceChildren(
      el("p", {}, el("a", { href: "#/" }, "\u2190 all models")),
      el("section", { class: "card" },
        el("div", { class: "head" }, el("h2", { id: "detail-name" }, d.namespace + "/" + d.name), phasePill(d.phase), readyBadge(d.ready)),
        el("div", { class: "facts" },
          [["Strategy", d.strategy], ["Model", d.model || "-"], ["Stable", d.stable || "-"], ["Candidate", d.candidate || "-"],
            ["Weight", fmt(d.canaryWeight) + "%"], ["Step", d.step || "-"], ["Paused from", d.pausedFrom || "-"],
            ["Pending action", d.pendingAction || "-"]].map(([k, v]) => el("div", {}, el("span", {}, k), el("span", {}, v)))),
        d.message ? el("p", {}, d.message) : null,
        el("div", { class: "actions" }, buttons, result)),
      el("section", { class: "card" }, el("h3", {}, "Timeline" + (prom.ok ? " (Prometheus " + prom.target + ", last 30 min)" : "")), note,
        el("div", { class: "grid2" }, timelines(d))),
      el("div", { class: "grid2" }, checkCard(d.analysis, d.thresholds),
        card("Tracks", table(["Track", "Version", "Weight", "Scaled"], d.tracks.map((t) => el("tr", {},
          el("td", {}, t.name), el("td", {}, t.version || "-"), el("td", { class: "num" }, fmt(t.weight) + "%"), el("td", {}, t.scaled ? "up" : "down")))),
          d.lastAction ? kv([["Last action", (d.lastAction.action || "-") + " at " + when(d.lastAction.time) + ": " + (d.lastAction.outcome || "")]]) : null,
          d.failedVersions.length ? kv([["Failed versions", d.failedVersions.join(", ")]]) : null)),
      card("Rollout history", d.history.length ? table(["Version", "Result", "Strategy", "Started", "Finished", "Reason"], d.history.map((h) => el("tr", {},
        el("td", {}, h.version || "-"), el("td", {}, h.result || "-"), el("td", {}, h.strategy || "-"),
        el("td", {}, when(h.startedAt)), el("td", {}, when(h.finishedAt)), el("td", {}, h.reason || "")))) : el("p", { class: "muted" }, "No rollout recorded yet."),
        d.lastRollout ? kv([["Last rollout", "v" + (d.lastRollout.version || "?") + " " + (d.lastRollout.result || "") + (d.lastRollout.reason ? ": " + d.lastRollout.reason : "")]]) : null),
      card("Conditions", table(["Type", "Status", "Reason", "Message", "Since"], d.conditions.map((c) => el("tr", {},
        el("td", {}, c.type || ""), el("td", {}, c.status || ""), el("td", {}, c.reason || ""), el("td", {}, c.message || ""), el("td", {}, when(c.lastTransitionTime)))))));
    document.getElementById("scope").textContent = d.namespace + "/" + d.name;
  }

  // --- routing and polling -----------------------------------------------------------------
  function route() {
    const match = /^#\/model\/([^/]+)\/([^/]+)$/.exec(location.hash);
    return match ? { namespace: decodeURIComponent(match[1]), name: decodeURIComponent(match[2]) } : null;
  }
  async function refresh() {
    clearTimeout(timer);
    const target = route();
    const key = location.hash;
    try {
      if (target) {
        const d = await api("/api/models/" + encodeURIComponent(target.namespace) + "/" + encodeURIComponent(target.name));
        if (location.hash !== key) return;
        const previous = document.getElementById("action-result");
        renderDetail(d);
        if (previous && shown === key) document.getElementById("action-result").replaceWith(previous);
      } else {
        const data = await api("/api/models");
        if (location.hash !== key) return;
        renderList(data);
      }
      shown = key;
      showError("");
      stamp("updated " + new Date().toLocaleTimeString());
    } catch (e) {
      showError(e.message);
      if (shown !== key) document.getElementById("view").replaceChildren();
    }
    timer = setTimeout(refresh, target ? DETAIL_POLL_MS : LIST_POLL_MS);
  }
  window.addEventListener("hashchange", refresh);
  refresh();
})();
"""
