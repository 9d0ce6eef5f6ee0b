#!/usr/bin/env bash
# Validates slq's deployment files without a Docker engine or a cluster:
# Dockerfile (dockerfilelint + structure + build-steps dry run), docker-compose.yml (Compose
# schema + references), Kubernetes manifests (schemas, strict fields, references), Prometheus
# config and alert rules (promtool check + unit tests), Grafana dashboard, metric names, docs.
# Each validator is also run on broken copies (a typo, a wrong reference) that it must reject.
#
# Usage: tests/deploy/run.sh        Needs node + npm (tools go to tests/deploy/node_modules,
# pinned by package-lock.json) and promtool (Debian "prometheus"; scripts/install-deps.sh).
# Prints one line per check, then "deploy: N passed, M failed"; exits 1 when M > 0.
# shellcheck disable=SC2016  # single-quoted ${...} and `...` below are sed/Markdown text
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/    /' | head -40; }

# check NAME CMD...: passes when CMD exits 0.
check() {
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then pass "$name"; else fail "$name" "$out"; fi
}

# reject NAME PATTERN CMD...: passes when CMD exits non-zero and its output matches PATTERN
# (the validator failed for the planted fault, not for something else).
reject() {
  local name="$1" pattern="$2" out
  shift 2
  if out="$("$@" 2>&1)"; then
    fail "$name" "accepted a broken input"
  elif grep -qE -- "$pattern" <<<"$out"; then
    pass "$name"
  else
    fail "$name" "rejected, but not for the planted fault (/$pattern/): $out"
  fi
}

# ---- tools ----------------------------------------------------------------------------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  fail "tools: node and npm" "install them (scripts/install-deps.sh installs nodejs + npm)"
  echo "deploy: $passed passed, $failed failed"
  exit 1
fi
stamp="$here/node_modules/.slq-lock.sha256"
lock_sum="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  if out="$(cd "$here" && npm ci --no-audit --no-fund --loglevel=error 2>&1)"; then
    echo "$lock_sum" > "$stamp"
    pass "tools: npm ci"
  else
    fail "tools: npm ci" "$out"
    echo "deploy: $passed passed, $failed failed"
    exit 1
  fi
fi
have_promtool=1
command -v promtool >/dev/null || have_promtool=0

cd "$here" || exit 1
NODE=(node --no-warnings)

# ---- Dockerfile -----------------------------------------------------------------------
check "dockerfile: dockerfilelint" "$here/node_modules/.bin/dockerfilelint" -c "$here" "$repo/Dockerfile"
check "dockerfile: structure" "${NODE[@]}" check_dockerfile.mjs
steps="$("${NODE[@]}" check_dockerfile.mjs 2>/dev/null | sed -n 's/^STEPS //p')"
# shellcheck disable=SC2086  # $steps is a word list
check "dockerfile: build steps dry-run ($steps)" bash -c \
  "SLQ_SKIP_DEPS=1 SLQ_CUDA=ON SLQ_CUDA_ARCH=90 bash '$repo/scripts/docker-build-steps.sh' --dry-run $steps | grep -q 'cmake --install'"
check "build-steps: dry-run all" bash -c \
  "SLQ_CUDA=OFF bash '$repo/scripts/docker-build-steps.sh' --dry-run all | grep -q -- '-DSLQ_CUDA=OFF'"
reject "build-steps: rejects an unknown step" "unknown step 'biuld'" \
  bash "$repo/scripts/docker-build-steps.sh" --dry-run biuld
reject "build-steps: rejects SLQ_CUDA=yes" "SLQ_CUDA='yes'" \
  env SLQ_CUDA=yes bash "$repo/scripts/docker-build-steps.sh" --dry-run configure
# runtime-packages on a stand-in prefix whose "binaries" are copies of git (links zlib).
if command -v dpkg >/dev/null; then
  mkdir -p "$tmp/prefix/bin"
  for b in slq-server slq-worker slqctl; do cp "$(command -v git)" "$tmp/prefix/bin/$b"; done
  check "build-steps: runtime-packages maps ldd to Debian packages" bash -c \
    "SLQ_PREFIX='$tmp/prefix' bash '$repo/scripts/docker-build-steps.sh' runtime-packages >/dev/null &&
     grep -qx libc6 '$tmp/prefix/share/slq/runtime-packages.txt' &&
     grep -qx zlib1g '$tmp/prefix/share/slq/runtime-packages.txt'"
fi
sed 's/^USER 10001:10001$/USER root/' "$repo/Dockerfile" > "$tmp/Dockerfile"
cp "$repo/.dockerignore" "$tmp/.dockerignore"
reject "dockerfile: rejects a root runtime user" "non-root" "${NODE[@]}" check_dockerfile.mjs "$tmp/Dockerfile"
sed 's/^FROM debian:12-slim AS/FROM debian AS/' "$repo/Dockerfile" > "$tmp/Dockerfile"
reject "dockerfile: rejects an untagged base image" "must pin a tag" "${NODE[@]}" check_dockerfile.mjs "$tmp/Dockerfile"
if command -v shellcheck >/dev/null; then
  check "shellcheck: build steps, run.sh, live_check.sh" shellcheck "$repo/scripts/docker-build-steps.sh" "$here/run.sh" "$here/live_check.sh"
  "${NODE[@]}" check_dockerfile.mjs "$repo/Dockerfile" "$tmp/dockerfile-runs.sh" >/dev/null 2>&1
  check "shellcheck: the Dockerfile's RUN commands (bash)" shellcheck -s bash "$tmp/dockerfile-runs.sh"
else
  echo "SKIP shellcheck: not installed"
fi

# ---- docker compose -------------------------------------------------------------------
compose="$repo/deploy/docker-compose.yml"
check "compose: schema and references" "${NODE[@]}" check_compose.mjs
sed 's/^    healthcheck:$/    healthchek:/' "$compose" > "$tmp/compose.yml"
reject "compose: rejects a misspelt key" "additional properties.*healthchek" \
  "${NODE[@]}" check_compose.mjs "$tmp/compose.yml" "$repo/deploy"
sed 's/condition: service_healthy/condition: service_health/' "$compose" > "$tmp/compose.yml"
reject "compose: rejects a bad depends_on condition" "allowed values|must be equal to one of" \
  "${NODE[@]}" check_compose.mjs "$tmp/compose.yml" "$repo/deploy"
sed 's/\${SLQ_WORKER_1_GPU:-2}/${SLQ_WORKER_0_GPU:-1}/' "$compose" > "$tmp/compose.yml"
reject "compose: rejects two workers on one GPU" "also reserved" \
  "${NODE[@]}" check_compose.mjs "$tmp/compose.yml" "$repo/deploy"
sed 's/^      postgres:$/      postgress:/' "$compose" > "$tmp/compose.yml"
reject "compose: rejects depends_on a missing service" "no such service" \
  "${NODE[@]}" check_compose.mjs "$tmp/compose.yml" "$repo/deploy"

# ---- Kubernetes -----------------------------------------------------------------------
check "k8s: schemas, strict fields, references" "${NODE[@]}" check_k8s.mjs
mutate_k8s() {  # mutate_k8s FILE SED_EXPR: copy deploy/k8s to $tmp/k8s, apply SED_EXPR to FILE
  rm -rf "$tmp/k8s" && cp -r "$repo/deploy/k8s" "$tmp/k8s" && sed -i "$2" "$tmp/k8s/$1"
  cmp -s "$repo/deploy/k8s/$1" "$tmp/k8s/$1" && echo "mutation '$2' changed nothing" >&2
}
mutate_k8s inference.yaml 's/^          readinessProbe:$/          readinesProbe:/'
reject "k8s: rejects a misspelt container field" 'unknown field "readinesProbe"' "${NODE[@]}" check_k8s.mjs "$tmp/k8s"
mutate_k8s worker.yaml '0,/^            grpc:$/s//            grcp:/; s/^            httpGet:$/            httpGett:/'
reject "k8s: rejects a misspelt probe field" 'unknown field "httpGett"' "${NODE[@]}" check_k8s.mjs "$tmp/k8s"
mutate_k8s worker.yaml 's/^  replicas: 4$/  replicas: four/'
reject "k8s: rejects a wrongly typed field" 'replicas must be integer' "${NODE[@]}" check_k8s.mjs "$tmp/k8s"
mutate_k8s servicemonitor.yaml 's/^      interval: 15s$/      intervall: 15s/'
reject "k8s: rejects a misspelt ServiceMonitor field" 'unknown field "intervall"' "${NODE[@]}" check_k8s.mjs "$tmp/k8s"
mutate_k8s inference.yaml '0,/^          readinessProbe:$/{n;n;s/^              port: 7070$/              port: 7070\n              service: slq.v1.NoSuchService/}'
reject "k8s: rejects a probe of a health service the server never sets" 'never sets' "${NODE[@]}" check_k8s.mjs "$tmp/k8s"
mutate_k8s postgres.yaml 's/^            allowPrivilegeEscalation: false$/            allowPrivilegeEscalation: true/'
reject "k8s: rejects a privilege-escalating container" 'allowPrivilegeEscalation: false' "${NODE[@]}" check_k8s.mjs "$tmp/k8s"
mutate_k8s job-service.yaml 's/key: store$/key: stor/'
reject "k8s: rejects a missing Secret key" 'Secret key stor not found' "${NODE[@]}" check_k8s.mjs "$tmp/k8s"
mutate_k8s configmap.yaml 's/^    max_queue: 256$/    max_queeu: 256/'
reject "k8s: rejects an unknown slq-server option" 'unknown key "max_queeu"' "${NODE[@]}" check_k8s.mjs "$tmp/k8s"
mutate_k8s inference.yaml '/^    kind: Deployment$/{n;s/name: slq-inference$/name: slq-inferense/}'
reject "k8s: rejects an HPA without target" 'scaleTargetRef Deployment/slq-inferense not found' "${NODE[@]}" check_k8s.mjs "$tmp/k8s"

# ---- Prometheus -----------------------------------------------------------------------
if [ "$have_promtool" -eq 1 ]; then
  check "prometheus: promtool check config" promtool check config "$repo/deploy/prometheus/prometheus.yml"
  check "prometheus: promtool check rules" promtool check rules "$repo/deploy/prometheus/rules/slq-alerts.yml"
  check "prometheus: promtool test rules" bash -c "cd '$repo/deploy/prometheus/rules' && promtool test rules slq-alerts.test.yml"
  mkdir -p "$tmp/rules"
  cp "$repo/deploy/prometheus/rules/slq-alerts.test.yml" "$tmp/rules/"
  sed 's/^          ) > 0.2$/          ) > 0.6/' "$repo/deploy/prometheus/rules/slq-alerts.yml" > "$tmp/rules/slq-alerts.yml"
  reject "prometheus: rule tests catch a wrong failure-rate threshold" "SlqJobFailureRateHigh" \
    bash -c "cd '$tmp/rules' && promtool test rules slq-alerts.test.yml"
  sed 's/< on (artifact) max by (artifact) (slq_artifact_certified_ear)/> on (artifact) max by (artifact) (slq_artifact_certified_ear)/' \
    "$repo/deploy/prometheus/rules/slq-alerts.yml" > "$tmp/rules/slq-alerts.yml"
  reject "prometheus: rule tests catch an inverted EAR comparison" "SlqShadowEarBelowCertificate" \
    bash -c "cd '$tmp/rules' && promtool test rules slq-alerts.test.yml"
else
  fail "prometheus: promtool" "promtool not found: install Debian's prometheus package (scripts/install-deps.sh)"
fi

# ---- Grafana and metric names ---------------------------------------------------------
dash="$repo/deploy/grafana/dashboards/slq.json"
check "grafana: dashboard" "${NODE[@]}" check_grafana.mjs
if command -v python3 >/dev/null; then
  check "grafana: slq.json is what make_dashboard.py writes" bash -c \
    "python3 '$repo/deploy/grafana/make_dashboard.py' '$tmp/generated.json' >/dev/null && cmp '$tmp/generated.json' '$dash'"
fi
sed 's/slq_inference_itl_seconds_bucket/slq_inference_itl_second_bucket/' "$dash" > "$tmp/slq.json"
reject "grafana: rejects an unknown metric" "slq_inference_itl_second_bucket is not in docs/METRICS.md" \
  "${NODE[@]}" check_grafana.mjs "$tmp/slq.json"
sed '0,/"uid": "slq-prometheus"/s//"uid": "prometheus"/' "$dash" > "$tmp/slq.json"
reject "grafana: rejects another datasource uid" "datasource must be" "${NODE[@]}" check_grafana.mjs "$tmp/slq.json"
sed 's/(slq_jobs)/(slq_jobs_bucket)/' "$dash" > "$tmp/slq.json"
reject "grafana: rejects _bucket of a gauge" "slq_jobs_bucket is not in" "${NODE[@]}" check_grafana.mjs "$tmp/slq.json"
check "flags: deploy command lines use the binaries' flags" "${NODE[@]}" check_flags.mjs
mkdir -p "$tmp/repo/server"
cp -r "$repo/deploy" "$repo/client" "$tmp/repo/" 2>/dev/null
cp -r "$repo/server/main" "$tmp/repo/server/" 2>/dev/null
sed 's/"127.0.0.1:7070", "health"\]/"127.0.0.1:7070", "helth"]/' "$repo/Dockerfile" > "$tmp/repo/Dockerfile"
if [ -d "$repo/client" ]; then
  reject "flags: rejects an unknown slqctl subcommand" "no subcommand helth" \
    env SLQ_REPO_ROOT="$tmp/repo" "${NODE[@]}" check_flags.mjs
fi
sed -i 's/- --config$/- --confg/' "$tmp/repo/deploy/docker-compose.yml"
cp "$repo/Dockerfile" "$tmp/repo/Dockerfile"
reject "flags: rejects an unknown slq-server flag" "no flag --confg" \
  env SLQ_REPO_ROOT="$tmp/repo" "${NODE[@]}" check_flags.mjs
check "metrics: docs/METRICS.md = contract" "${NODE[@]}" check_metrics.mjs contract
check "metrics: alert rules use documented metrics" "${NODE[@]}" check_metrics.mjs rules
check "metrics: server/metrics registers the documented metrics" "${NODE[@]}" check_metrics.mjs code
sed '/^| `slq_leases_active`/d' "$repo/docs/METRICS.md" > "$tmp/METRICS.md"
reject "metrics: contract check catches a missing metric" "slq_leases_active is not documented" \
  "${NODE[@]}" check_metrics.mjs contract "$tmp/METRICS.md"

# ---- Live: the real slq-server with the deploy configs (optional) ------------------------
if [ -n "${SLQ_SERVER_BIN:-}" ] && [ -n "${SLQCTL_BIN:-}" ]; then
  check "live: slq-server runs with deploy/slq.yaml" \
    bash "$here/live_check.sh" "$SLQ_SERVER_BIN" "$SLQCTL_BIN" "$repo/deploy/slq.yaml"
  "${NODE[@]}" --input-type=module -e "
    const { loadYamlDocs } = await import('./lib/common.mjs');
    const cm = loadYamlDocs('$repo/deploy/k8s/configmap.yaml').find((d) => d.doc.kind === 'ConfigMap');
    process.stdout.write(cm.doc.data['slq.yaml']);" > "$tmp/configmap-slq.yaml"
  check "live: slq-server runs with the k8s ConfigMap's slq.yaml" \
    bash "$here/live_check.sh" "$SLQ_SERVER_BIN" "$SLQCTL_BIN" "$tmp/configmap-slq.yaml"
  sed 's/^max_queue:/max_queeu:/' "$repo/deploy/slq.yaml" > "$tmp/bad-slq.yaml"
  reject "live: the check fails when slq-server refuses the config" "unknown key 'max_queeu'" \
    bash "$here/live_check.sh" "$SLQ_SERVER_BIN" "$SLQCTL_BIN" "$tmp/bad-slq.yaml"
else
  echo "SKIP live: set SLQ_SERVER_BIN and SLQCTL_BIN (and SLQ_WORKER_BIN) to run the binaries with the deploy configs"
fi

# ---- YAML hygiene and docs ------------------------------------------------------------
check "yaml: every deploy file parses strictly (no duplicate keys)" "${NODE[@]}" -e "
  const { loadYamlDocs } = await import('./lib/common.mjs');
  const fs = await import('node:fs'); const path = await import('node:path');
  const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(d, e.name)) : /\.ya?ml$/.test(e.name) ? [path.join(d, e.name)] : []);
  const files = walk('$repo/deploy'); if (files.length < 10) throw new Error('only ' + files.length + ' YAML files');
  for (const f of files) loadYamlDocs(f);" --input-type=module
check "docs: OPERATIONS.md documents every slq-server option" "${NODE[@]}" --input-type=module -e "
  const fs = await import('node:fs');
  const { serverYamlKeys } = await import('./lib/server_keys.mjs');
  const doc = fs.readFileSync('$repo/docs/OPERATIONS.md', 'utf8');
  const missing = [...serverYamlKeys().keys].map((k) => '--' + k.replaceAll('_', '-')).filter((f) => !doc.includes('\`' + f + '\`'));
  if (missing.length) { console.error('not documented: ' + missing.join(' ')); process.exit(1); }
  if (!doc.includes('METRICS.md')) { console.error('no link to METRICS.md'); process.exit(1); }"

echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
