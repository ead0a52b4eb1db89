// The landing page's "try it" flow: mint a demo token, check status, predict.
// Talks only to this origin (relative URLs), so it works behind any proxy path.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let token = null;
  let featureNames = [];

  function show(el, text, cls) {
    el.textContent = text;
    el.className = cls || "muted";
  }

  async function call(method, url, opts) {
    const res = await fetch(url, Object.assign({ method: method }, opts || {}));
    let body = null;
    const text = await res.text();
    try { body = JSON.parse(text); } catch (e) { body = { detail: text }; }
    return { status: res.status, ok: res.ok, body: body, retryAfter: res.headers.get("Retry-After") };
  }

  function describeError(r) {
    const d = r.body && r.body.detail;
    let msg = typeof d === "string" ? d : Array.isArray(d) ? d.map((e) => e.msg).join("; ") : JSON.stringify(d);
    if (r.status === 429 && r.retryAfter) msg += " (retry in " + r.retryAfter + "s)";
    return "HTTP " + r.status + ": " + msg;
  }

  function sampleRows() {
    const row = {};
    featureNames.forEach((n) => { row[n] = Math.round(Math.random() * 1000) / 1000; });
    return JSON.stringify({ rows: [row] }, null, 1);
  }

  function renderPrediction(r) {
    const result = $("result");
    result.textContent = "";
    $("raw").hidden = false;
    $("raw").textContent = JSON.stringify(r.body, null, 2);
    if (!r.ok) {
      const p = document.createElement("p");
      p.className = "warn";
      p.id = "prediction-error";
      p.textContent = describeError(r);
      result.appendChild(p);
      return;
    }
    const pred = r.body.predictions[0];
    const label = document.createElement("div");
    label.className = "label";
    label.id = "prediction-label";
    label.textContent = pred.label;
    result.appendChild(label);
    const probs = pred.probabilities || {};
    Object.keys(probs).sort((a, b) => probs[b] - probs[a]).forEach((name) => {
      const bar = document.createElement("div");
      bar.className = "bar";
      const n = document.createElement("span"); n.className = "name"; n.textContent = name;
      const t = document.createElement("span"); t.className = "track";
      const f = document.createElement("span"); f.className = "fill"; f.style.width = (probs[name] * 100).toFixed(1) + "%";
      t.appendChild(f);
      const v = document.createElement("span"); v.textContent = (probs[name] * 100).toFixed(1) + "%";
      bar.append(n, t, v);
      result.appendChild(bar);
    });
    const meta = document.createElement("p");
    meta.className = "muted";
    meta.textContent = "model " + r.body.model.name + " v" + r.body.model.version;
    result.appendChild(meta);
  }

  async function loadMetadata() {
    const r = await call("GET", "/metadata");
    if (r.ok && r.body.model) {
      featureNames = r.body.model.feature_names || [];
      if (r.body.model.version) $("model-version").textContent = r.body.model.version;
      $("rows").value = featureNames.length ? sampleRows() : '{"rows": []}';
    }
  }

  $("btn-token").addEventListener("click", async () => {
    const r = await call("POST", "/demo/token");
    if (!r.ok) { show($("token-state"), describeError(r), "warn"); return; }
    token = r.body.access_token;
    const until = new Date(r.body.expires_at * 1000).toLocaleTimeString();
    show($("token-state"), "token ready (key " + r.body.kid + "), valid until " + until, "ok");
    ["btn-status", "btn-predict-image", "btn-predict-rows"].forEach((id) => { $(id).disabled = false; });
  });

  $("btn-status").addEventListener("click", async () => {
    const r = await call("GET", "/demo/status", { headers: { Authorization: "Bearer " + token } });
    if (!r.ok) { show($("status-state"), describeError(r), "warn"); return; }
    const b = r.body;
    show($("status-state"), (b.ready ? "ready: " : "not ready: ") + (b.model ? b.model.name + " v" + b.model.version : "no model") +
      " · classes " + (b.classes || []).join(", "), b.ready ? "ok" : "warn");
  });

  $("btn-predict-rows").addEventListener("click", async () => {
    const r = await call("POST", "/demo/predict", {
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      body: $("rows").value,
    });
    renderPrediction(r);
  });

  $("btn-predict-image").addEventListener("click", async () => {
    const file = $("image-file").files[0];
    if (!file) { renderPrediction({ ok: false, status: 0, body: { detail: "choose an image first" } }); return; }
    const form = new FormData();
    form.append("file", file);
    const r = await call("POST", "/demo/predict", { headers: { Authorization: "Bearer " + token }, body: form });
    renderPrediction(r);
  });

  if (document.body.dataset.demoEnabled !== "true") {
    $("demo-disabled").hidden = false;
    $("btn-token").disabled = true;
  }
  loadMetadata();
})();
