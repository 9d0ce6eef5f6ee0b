#!/usr/bin/env bash
# Live check of the deploy config against the real binaries, on loopback only:
#   tests/deploy/live_check.sh SLQ_SERVER_BIN SLQCTL_BIN CONFIG_YAML
# Starts slq-server with CONFIG_YAML (deploy/slq.yaml or the ConfigMap's slq.yaml), its
# paths, device and ports overridden by flags (flags beat the file), then checks:
#   - the server accepts the config file (unknown keys or bad values make it exit);
#   - `slqctl health` succeeds without a token while auth is on (health is exempt);
#   - /metrics passes `promtool check metrics`, exposes every unlabelled metric of
#     docs/METRICS.md, and every slq_ family it exposes is documented with the same type;
#   - with SLQ_WORKER_BIN set: slq-worker, started with the deploy files' worker flags,
#     registers (the server's slq_workers_connected reaches 1).
# Exits non-zero on the first failure, after stopping the server it started.
set -euo pipefail

server_bin="$1"
slqctl_bin="$2"
config="$3"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'; }
grpc_port="$(free_port)"
metrics_port="$(free_port)"
mkdir -p "$work/data" "$work/texts"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"

"$server_bin" --config "$config" \
  --listen "127.0.0.1:$grpc_port" --metrics-listen "127.0.0.1:$metrics_port" \
  --data-dir "$work/data" --store "sqlite://$work/data/jobs.db" \
  --artifact-dir "$work/data/artifacts" --model-cache-dir "$work/data/models" \
  --allowed-roots "$work/data" --text-dir "$work/texts" --auth-token-file "$work/token" \
  --device cpu --in-process-worker=false --kv-cache-bytes 16777216 --threads 1 \
  > "$work/server.log" 2>&1 &
pid=$!

ok=0
for _ in $(seq 1 60); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "slq-server exited with config $config:" >&2
    tail -20 "$work/server.log" >&2
    exit 1
  fi
  if "$slqctl_bin" --server "127.0.0.1:$grpc_port" --timeout 2 health >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.5
done
if [ "$ok" -ne 1 ]; then
  echo "slqctl health did not succeed within 30 s; server log:" >&2
  tail -20 "$work/server.log" >&2
  exit 1
fi

node -e '
  fetch(process.argv[1]).then(async (r) => {
    if (!r.ok) { console.error("GET /metrics: HTTP " + r.status); process.exit(1); }
    process.stdout.write(await r.text());
  }).catch((e) => { console.error("GET /metrics: " + e.message); process.exit(1); });
' "http://127.0.0.1:$metrics_port/metrics" > "$work/metrics.txt"

if command -v promtool >/dev/null; then
  promtool check metrics < "$work/metrics.txt" || { echo "promtool check metrics failed" >&2; exit 1; }
fi

SLQ_METRICS_TXT="$work/metrics.txt" node --input-type=module -e '
  const fs = await import("node:fs");
  const { loadMetricList } = await import(process.argv[1]);
  const body = fs.readFileSync(process.env.SLQ_METRICS_TXT, "utf8");
  const declared = new Map([...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
  // prometheus-cpp exposes a labelled family only once it has a child (a label value seen),
  // so at start only the unlabelled metrics must be there; every exposed slq_ family must
  // be documented with its type.
  const bad = [];
  const documented = loadMetricList();
  for (const [name, m] of documented) {
    if (!declared.has(name)) { if (m.labels.length === 0) bad.push(name + " is not exposed"); }
    else if (declared.get(name) !== m.type) bad.push(name + " is exposed as " + declared.get(name) + ", documented as " + m.type);
  }
  for (const name of declared.keys()) {
    if (name.startsWith("slq_") && !documented.has(name)) bad.push(name + " is exposed but not in docs/METRICS.md");
  }
  if (bad.length) { console.error(bad.join("\n")); process.exit(1); }
  console.log("live: " + declared.size + " metric families exposed, all consistent with docs/METRICS.md");
' "$here/lib/common.mjs"
# Optional: a worker with the deploy files' worker flags registers with the server.
if [ -n "${SLQ_WORKER_BIN:-}" ]; then
  worker_metrics_port="$(free_port)"
  "$SLQ_WORKER_BIN" --server="127.0.0.1:$grpc_port" --device=cpu --name=live-worker \
    --auth-token-file="$work/token" --metrics-listen="127.0.0.1:$worker_metrics_port" \
    --allowed-roots="$work/data" --text-dir="$work/texts" > "$work/worker.log" 2>&1 &
  wpid=$!
  registered=0
  for _ in $(seq 1 30); do
    if node -e '
      fetch(process.argv[1]).then((r) => r.text()).then((t) => {
        const m = /^slq_workers_connected (\S+)$/m.exec(t);
        process.exit(m && Number(m[1]) >= 1 ? 0 : 1);
      }).catch(() => process.exit(1));' "http://127.0.0.1:$metrics_port/metrics"; then registered=1; break; fi
    sleep 0.5
  done
  kill "$wpid" 2>/dev/null || true
  wait "$wpid" 2>/dev/null || true
  if [ "$registered" -ne 1 ]; then
    echo "slq-worker did not register within 15 s; worker log:" >&2
    tail -20 "$work/worker.log" >&2
    exit 1
  fi
  echo "live: slq-worker registered (slq_workers_connected >= 1)"
fi
echo "live: $config accepted by $(basename "$server_bin"); health OK on 127.0.0.1:$grpc_port"
