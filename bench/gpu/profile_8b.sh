#!/usr/bin/env bash
# Runs on the GPU machine: time to profile + search (+ held-out verification) of an 8B-shaped
# model (Llama-3-8B transformer blocks, random weights, docs-19m's tokenizer and real text)
# with the pipeline's evaluations on the GPU. Pack as in run_on_gpu.sh (binaries: slq), plus
# bench/gpu/make_random_llama.py from the checkout. Usage (there):
#   W=/tmp/w bash bench/gpu/profile_8b.sh [FORMATS] [LAYERS]     (default 4,8 and 32)
# Writes $OUT/profile8b.{log,json} (the certificate, with stage_wall_seconds).
set -uo pipefail
W=${W:-/tmp/w}
source $W/fwd/env.sh
OUT=${OUT:-/tmp/slq-out}
formats=${1:-4,8}
layers=${2:-32}
M=${M8B:-/tmp/m8b}
mkdir -p "$OUT"
if [ ! -f $M/config.json ]; then
  python3 bench/gpu/make_random_llama.py $M --tokenizer-from $W/shared/models/docs-19m --layers $layers \
    2>&1 | tee "$OUT/make8b.log"
fi
free -g | head -2 > "$OUT/profile8b.log"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$OUT/profile8b.log"
start=$(date +%s.%N)
/usr/bin/time -v slq quantize $M --data $W/shared/data/debian-docs-val-part1.txt --device cuda \
  --formats "$formats" --target 'ear>=0.99' --cloze-items 0 --json > "$OUT/profile8b.json" 2>> "$OUT/profile8b.log"
rc=$?
echo "rc=$rc wall=$(python3 -c "import time; print(round(time.time() - $start, 1))") s" >> "$OUT/profile8b.log"
python3 - "$OUT/profile8b.json" <<'PY' | tee -a "$OUT/profile8b.log"
import json, sys
try:
    c = json.load(open(sys.argv[1]))
except Exception as e:
    print("no certificate:", e); sys.exit(0)
print("verification_device:", c.get("verification_device"))
print("stage_wall_seconds:", json.dumps(c.get("stage_wall_seconds")))
print("avg bits (quantized layers): %.3f; status: %s" % (c["avg_bits_per_param_quantized_layers"], c["status"]))
h = c["heldout"]
print("held-out EAR %.5f [%.5f, %.5f], KL %.3e; %d sequences, %d positions" % (
    h["ear"]["mean"], h["ear"]["lo95"], h["ear"]["hi95"], h["kl"]["mean"], h["sequences"], h["positions"]))
print("search:", json.dumps({k: c["search"]["outcome"].get(k) for k in ("wall_seconds", "note", "calibration_met")}))
print("closed-loop evaluations:", len(c["search"]["outcome"].get("steps", [])))
PY
grep -E "Maximum resident|Elapsed|rc=" "$OUT/profile8b.log"
exit $rc
