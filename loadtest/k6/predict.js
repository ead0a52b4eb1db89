// k6 scenario for users who have k6 (it cannot be installed from the package registries
// here, so nothing in the repository depends on it; loadtest/bench_inference.py with wrk
// is what docs/benchmarks.md reports).
//
//   k6 run -e BASE_URL=http://127.0.0.1:8000 -e API_KEY=... loadtest/k6/predict.js
//
// `make loadtest` runs it (through the local cluster's Gateway, with --summary-export) when
// k6 is on PATH, and wrk with loadtest/bench_inference_post.lua otherwise.
//
// BASE_URL  the inference server or the gateway path of a model (default localhost:8000)
// API_KEY   sent as x-api-key when set
// HOST      sent as the Host header when set: through the Gateway, the HTTPRoute's hostname
// ROW       a JSON object sent as every row (default: random values in [0, 1) per column;
//           a server with FEATURE_BOUNDS=refuse answers 422 to values outside its training range)
// VUS, DURATION, BATCH  virtual users (16), run time (30s), rows per request (1)
import http from "k6/http";
import { check } from "k6";

const BASE_URL = __ENV.BASE_URL || "http://127.0.0.1:8000";
const BATCH = parseInt(__ENV.BATCH || "1", 10);
const ROW = __ENV.ROW ? JSON.parse(__ENV.ROW) : null;

export const options = {
  vus: parseInt(__ENV.VUS || "16", 10),
  duration: __ENV.DURATION || "30s",
  thresholds: {
    http_req_failed: ["rate<0.01"],
    "http_req_duration{expected_response:true}": ["p(99)<10"],
  },
};

// The model's feature columns come from GET /metadata, so the scenario follows the model.
export function setup() {
  const res = http.get(`${BASE_URL}/metadata`, { headers: headers() });
  check(res, { "metadata 200": (r) => r.status === 200 });
  const body = res.json();
  const model = body.model || body; // the server's /metadata nests them under "model"
  const names = model.feature_names || (model.feature_schema || []).map((f) => f.name);
  if (names.length === 0) {
    throw new Error(`no feature columns in ${BASE_URL}/metadata: ${res.body}`);
  }
  return { names };
}

function headers() {
  const h = { "content-type": "application/json" };
  if (__ENV.API_KEY) h["x-api-key"] = __ENV.API_KEY;
  if (__ENV.HOST) h["Host"] = __ENV.HOST;
  return h;
}

export default function (data) {
  const rows = [];
  for (let i = 0; i < BATCH; i++) {
    if (ROW) {
      rows.push(ROW);
      continue;
    }
    const row = {};
    for (const name of data.names) row[name] = Math.random();
    rows.push(row);
  }
  const res = http.post(`${BASE_URL}/predict`, JSON.stringify({ rows }), { headers: headers() });
  check(res, { "predict 200": (r) => r.status === 200 });
}
