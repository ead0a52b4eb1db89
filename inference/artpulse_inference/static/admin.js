// The ops panel: polls /ops/summary every 5 s. Credentials: the identity-aware proxy's
// headers (nothing to do here), or an ops key (OPS_API_KEYS; a predict key is refused
// with 403) kept in this tab's sessionStorage. A key
// may also be handed over once in the URL fragment (#key=...), which never reaches the
// server or its logs; it is moved to sessionStorage and removed from the address bar.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const KEY = "artpulse.apiKey";
  let timer = null;

  function takeKeyFromFragment() {
    const m = /(?:^#|&)key=([^&]+)/.exec(window.location.hash);
    if (m) {
      sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
      history.replaceState(null, "", window.location.pathname);
      return true;
    }
    return false;
  }
  takeKeyFromFragment();
  window.addEventListener("hashchange", () => { if (takeKeyFromFragment()) start(); });

  function headers() {
    const key = sessionStorage.getItem(KEY);
    return key ? { "x-api-key": key } : {};
  }

  const fmt = {
    pct: (v) => (v === null || v === undefined ? "-" : (v * 100).toFixed(2) + "%"),
    ms: (v) => (v === null || v === undefined ? "-" : v.toFixed(1) + " ms"),
    num: (v, d) => (v === null || v === undefined ? "-" : Number(v).toFixed(d === undefined ? 3 : d)),
    time: (t) => (t ? new Date(t * 1000).toLocaleString() : "-"),
  };

  function text(id, value, cls) {
    const el = $(id);
    el.textContent = value;
    if (cls !== undefined) el.className = cls;
  }

  function spark(points) {
    const svg = $("d-spark");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (!points.length) return;
    const max = Math.max(0.3, ...points.map((p) => p.score));
    const step = points.length > 1 ? 300 / (points.length - 1) : 0;
    const coords = points.map((p, i) => (i * step).toFixed(1) + "," + (58 - (p.score / max) * 54).toFixed(1));
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", coords.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#8a3ffc");
    line.setAttribute("stroke-width", "2");
    svg.appendChild(line);
  }

  function render(s) {
    const m = s.model || {};
    text("m-name", m.name || "-");
    text("m-uri", m.uri || "");
    text("m-version", m.version || "not loaded");
    const aliases = m.registry_aliases || {};
    text("m-aliases", Object.keys(aliases).map((a) => a + " → v" + aliases[a]).join(" · "));
    text("m-track", s.track);
    text("m-ready", s.ready ? "ready" : "not ready: " + s.ready_reason, s.ready ? "ok" : "warn");
    text("s-requests", String(s.requests.requests));
    text("s-total", s.request_count + " since start");
    text("s-errors", fmt.pct(s.error_rate), s.error_rate > 0.01 ? "value warn" : "value");
    text("s-p95", fmt.ms(s.p95_latency_ms));
    text("s-infer", "inference p95 " + fmt.ms(s.inference_p95_ms));
    const d = s.drift;
    text("d-score", d.enabled ? (d.score === null ? "collecting (" + d.samples + "/" + d.min_samples + ")" : fmt.num(d.score)) : "no baseline");
    text("d-trend", d.trend);
    spark(d.history || []);
    const table = $("d-psi");
    table.textContent = "";
    Object.entries(d.psi || {}).sort((a, b) => b[1] - a[1]).slice(0, 6).forEach(([name, v]) => {
      const tr = table.insertRow();
      tr.insertCell().textContent = name;
      tr.insertCell().textContent = fmt.num(v);
    });
    const t = s.training || {};
    text("t-retrain", fmt.time(t.run_started_at));
    const q = t.quality_gate;
    text("t-quality", !q ? "no report" : q.skipped ? "skipped" : q.passed ? "passed" : q.passed === false ? "failed" : "unknown",
      q && q.passed && !q.skipped ? "ok" : "warn");
    text("t-run", s.run_id || "-");
    const r = s.last_reload;
    text("r-last", r ? fmt.time(r.at) + " · " + (r.ok ? "ok" : "failed") + " · " + r.message : "-", r && !r.ok ? "warn" : "");
    const sh = s.shadow;
    text("sh-state", sh.enabled ? "v" + sh.version + " · agreement " + fmt.pct(sh.agreement_ratio) + " over " + sh.compared_rows + " rows" : "off");
    text("who", s.caller);
    text("refreshed", new Date().toLocaleTimeString());
  }

  async function refresh() {
    let res;
    try {
      res = await fetch("/ops/summary", { headers: headers() });
    } catch (e) {
      text("login-error", "server unreachable: " + e);
      return;
    }
    if (res.status === 401 || res.status === 403) {
      const body = await res.json().catch(() => ({}));
      $("panel").hidden = true;
      $("login").hidden = false;
      text("login-error", sessionStorage.getItem(KEY) ? "refused: " + (body.detail || res.status) : "");
      stop();
      return;
    }
    if (!res.ok) { text("refreshed", "error " + res.status); return; }
    render(await res.json());
    $("login").hidden = true;
    $("panel").hidden = false;
  }

  function start() { stop(); refresh(); timer = setInterval(refresh, 5000); }
  function stop() { if (timer) clearInterval(timer); timer = null; }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("api-key").value);
    $("api-key").value = "";
    start();
  });
  $("logout").addEventListener("click", (ev) => {
    ev.preventDefault();
    sessionStorage.removeItem(KEY);
    $("panel").hidden = true;
    $("login").hidden = false;
    stop();
  });
  $("btn-reload").addEventListener("click", async () => {
    text("reload-state", "reloading...");
    // The custom header is the CSRF proof: a cross-site form cannot send it.
    const res = await fetch("/reload-model", {
      method: "POST",
      headers: Object.assign({ "x-artpulse-csrf": "1" }, headers()),
    });
    const body = await res.json().catch(() => ({}));
    const info = res.ok ? body : body.detail || {};
    text("reload-state", res.ok ? "serving v" + info.version + " (" + info.seconds.toFixed(2) + " s)" : "failed: " + (info.message || res.status), res.ok ? "ok" : "warn");
    refresh();
  });
  start();
})();
