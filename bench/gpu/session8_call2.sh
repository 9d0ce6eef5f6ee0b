#!/usr/bin/env bash
# Second device call of session 8 (main after merging the Grid Games branches): (1) the GPU tests, grid
# kernels included; (2) the kernel bench, grid vs uniform matrices in one run; (3) docs-19m artifacts for the
# llama.cpp comparison with `--grids both` (rtn,gptq) at bits<=4.5/5/5.5/6 and ear>=0.99, plus the non-grid
# 5.5/6.0 ones whose call-1 tars were over the return limit (call 1's profile cache carried in, Grams cached);
# (4) llama-perplexity --kl-divergence of every artifact on this host's CPUs (bench/compare/llamacpp_kld.py with
# --types '': slq artifacts only; call 1's gptq-ac-b4.5 is re-made and re-scored here to tie this host's base
# to the VM's); (5) if time is left, the report's docs-19m sweep of the grid set (scripts/report --sweep-only).
# Pack: .gpu/s8c2.tar.xz (gpu-bundle of slq + GPU tests + kernel bench, llama-perplexity + libs, gguf-py,
# the 3 models, the 2 texts, calib/heldout, call 1's cache, the report cache of docs-19m).
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/s8c2.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
O=$OUT/r; mkdir -p $O/cert $O/art $O/tests
cp -r $W/cache1 $O/cache
left() { echo $(( ${BUDGET:-560} - ($(date +%s) - T0) )); }
t() { echo "t=$(( $(date +%s) - T0 )) s: $*"; }
for b in slq_kernels_gpu_test slq_gpu_ops_test slq_gpu_test slq_gpu_eval_test slq_inference_gpu_test; do
  timeout 150 $b --gtest_brief=1 > $O/tests/$b.log 2>&1; t "$b rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED|SKIPPED \]" $O/tests/$b.log | head -8
done
timeout 60 slq_kernel_bench ${KBENCH_ARGS:---grids} > $O/kbench.md 2>&1; t "kernel bench rc=$?"; tail -40 $O/kbench.md | cut -c1-200
M=$W/shared/models/docs-19m
q() {  # name, then slq quantize flags
  local n=$1; shift
  [ $(left) -gt 40 ] || { echo "skip $n (time)"; return; }
  local s=$(date +%s)
  timeout $(( $(left) - 30 )) slq quantize $M --data $W/calib.txt --eval $W/heldout.txt --formats 4-5-6-7-8 --quantize-head \
    --device cuda --json --cloze-items 0 --profile-cache $O/cache "$@" > $O/cert/$n.json 2> $O/cert/$n.err
  local rc=$?
  python3 - $O/cert/$n.json $n $rc $(( $(date +%s) - s )) <<'PY'
import json, sys
p, n, rc, wall = sys.argv[1:]
try:
    c = json.load(open(p)); h = c["heldout"]
    v = c.get("search", {}).get("outcome", {}).get("variants", {}) or {}
    g = sum(1 for x in v.values() if x.endswith("grid"))
    print(f"{n:16s} rc={rc} wall={float(wall):5.1f}s bits={c['avg_bits_per_param_quantized_layers']:.3f} met={c['target_met']} "
          f"EAR={h['ear']['mean']:.5f} [{h['ear']['lo95']:.5f},{h['ear']['hi95']:.5f}] KL={h['kl']['mean']:.3e} "
          f"[{h['kl']['lo95']:.3e},{h['kl']['hi95']:.3e}] grid layers {g}/{len(v)} grams={c['stage_wall_seconds'].get('input_grams', 0):.1f}s")
except Exception as e:
    print(f"{n:16s} rc={rc} wall={float(wall):5.1f}s no certificate ({e})")
PY
}
q gptq-ac-b4.5 --quantizers rtn,gptq --target 'bits<=4.5' --out $O/art/gptq-ac-b4.5
for X in 4.5 5.0 5.5 6.0; do q gptqg-b$X --quantizers rtn,gptq --grids both --target "bits<=$X" --out $O/art/gptqg-b$X; done
q gptqg-ear99 --quantizers rtn,gptq --grids both --target 'ear>=0.99'
for X in 5.5 6.0; do q gptq-ac-b$X --quantizers rtn,gptq --target "bits<=$X" --out $O/art/gptq-ac-b$X; done
rm -f $O/cache/grams-*.bin
t "llama scoring"
A=""; for d in $O/art/*; do A="$A --artifact $(basename $d)=$d"; done
for try in 1 2; do
  PYTHONPATH=$W/gguf-py timeout $(( $(left) - 20 )) python3 bench/compare/llamacpp_kld.py --model $M \
    --text $W/shared/data/debian-docs-val-part1.txt --work $W/h --slq $(command -v slq) --llama-bin $W/llama --types '' \
    --chunks 16 --threads 16 $A --out $O/kld > $O/kld.log 2>&1 && break
  grep -l "no 'Mean" $O/kld.log >/dev/null && rm -f $W/h/*.kld.log; t "harness retry"
done
t "harness done"; tail -12 $O/kld.md 2>/dev/null
rm -rf $O/art
if [ $(left) -gt 120 ]; then
  mkdir -p $O/rc && cp -r $W/rc/docs-19m $O/rc/ 2>/dev/null
  PYTHONUNBUFFERED=1 timeout $(( $(left) - 15 )) python3 scripts/report --slq $(command -v slq) --shared $W/shared --cache $O/rc \
    --device cuda --sweep-only --models docs-19m --only v-grid-ear0.99,v-grid-bits5.0,v-grid-bits4.5,v-grid-bits6.0,v-grid-bits5.5,vu-gptqgrid-8,vu-gptqgrid-4,vu-gptqgrid-6,v-grid-bits7.0,vu-gptqgrid-5,vu-gptqgrid-7,v-grid-bits6.5,v-grid-bits7.5,v-grid-bits8.0 2>&1 | grep -v '^docs-19m:$' | tail -20
  rm -f $O/rc/docs-19m/profiles/grams-*.bin
fi
t "end"
tar -C $OUT -czf $OUT/s8c2.tgz r && rm -rf $O
