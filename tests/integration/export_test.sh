#!/usr/bin/env bash
# `slq export` end to end with the offline CLI: quantize tinystories-656k (uniform 4-bit, group
# 32: every layer has an exact GGUF type), export it as a Hugging Face folder (the exported
# folder generates the artifact's greedy text) and as GGUF; an 8-bit asymmetric artifact is
# refused for GGUF with the layer named. When llama.cpp's llama-simple is found
# ($SLQ_LLAMA_CPP_BIN_DIR, else PATH), it loads the GGUF and its greedy continuation must equal
# slq's; skipped otherwise (CI has no llama.cpp). (Exactness of the GGUF weights, the tokenizer
# metadata and the HF logits: slq_export_test.)
source "$(dirname "$0")/lib.sh"
SLQ=$SLQ_BUILD_DIR/server/main/slq
MODEL=$SHARED/models/tinystories-656k
TEXT=$SHARED/data/tinystories-valid-part1.txt
q() { "$SLQ" quantize "$MODEL" --data "$TEXT" --group-size 32 --device cpu --out "$@" > /dev/null 2>&1 || true; }
q "$STATE/a4" --uniform-bits 4
q "$STATE/a8" --uniform-bits 8
check "artifacts written" test -f "$STATE/a4/manifest.json" -a -f "$STATE/a8/manifest.json"

check "export --format hf" "$SLQ" export "$STATE/a4" --format hf --out "$STATE/hf" --dtype fp32
check "the HF folder is plain: config.json, model.safetensors, tokenizer" \
  test -f "$STATE/hf/config.json" -a -f "$STATE/hf/model.safetensors" -a -f "$STATE/hf/tokenizer.json" -a ! -f "$STATE/hf/manifest.json"
check "config.json says the export dtype" python3 -c "import json,sys; assert json.load(open('$STATE/hf/config.json'))['torch_dtype'] == 'float32'"
a=$("$SLQ" generate "$STATE/a4" "Once upon a time" -n 24 2>/dev/null)
h=$("$SLQ" generate "$STATE/hf" "Once upon a time" -n 24 2>/dev/null)
check "the exported folder generates the artifact's greedy text" test -n "$a" -a "$a" = "$h"
check "export --format hf --dtype bf16" "$SLQ" export "$STATE/a4" --format hf --out "$STATE/hf16"
expect_exit "export into a non-empty folder refused" 2 "$SLQ" export "$STATE/a4" --format hf --out "$STATE/hf"

check "export --format gguf" "$SLQ" export "$STATE/a4" --format gguf --out "$STATE/a4.gguf"
check "GGUF magic and version 3" python3 -c "
import struct; b = open('$STATE/a4.gguf', 'rb').read(8); assert b[:4] == b'GGUF' and struct.unpack('<I', b[4:])[0] == 3"
expect_exit "GGUF refused for 8-bit asymmetric layers" 2 "$SLQ" export "$STATE/a8" --format gguf --out "$STATE/a8.gguf"
check "the refusal names the first layer and the alternative" \
  grep -q 'layer model.layers.0.self_attn.q_proj (q8 g32 asym) has no exact GGUF type.*--format hf' "$STATE/last.err"
check "nothing written on refusal" test ! -e "$STATE/a8.gguf"
check "export --format gguf --dtype f32 dequantizes what has no exact type" \
  "$SLQ" export "$STATE/a8" --format gguf --dtype f32 --out "$STATE/a8-f32.gguf"
check "export --format gguf --dtype f32 of the base model folder" \
  "$SLQ" export "$MODEL" --format gguf --dtype f32 --out "$STATE/base-f32.gguf"
expect_exit "an unknown GGUF dtype is refused" 2 "$SLQ" export "$STATE/a4" --format gguf --dtype q4 --out "$STATE/x.gguf"
check "slq split writes quantize's calibration and held-out documents" \
  "$SLQ" split "$TEXT" --calib "$STATE/calib.txt" --heldout "$STATE/heldout.txt"
check "the two sides together are every non-empty line of the text" python3 -c "
t = [l for l in open('$TEXT').read().split('\\n') if l.strip()]
c = open('$STATE/calib.txt').read().splitlines(); h = open('$STATE/heldout.txt').read().splitlines()
assert sorted(c + h) == sorted(t) and c and h and not set(c) & set(h), (len(c), len(h), len(t))"
LLAMA_SIMPLE=""
if [ -n "${SLQ_LLAMA_CPP_BIN_DIR:-}" ] && [ -x "$SLQ_LLAMA_CPP_BIN_DIR/llama-simple" ]; then
  LLAMA_SIMPLE=$SLQ_LLAMA_CPP_BIN_DIR/llama-simple
elif command -v llama-simple > /dev/null 2>&1; then
  LLAMA_SIMPLE=$(command -v llama-simple)
fi
if [ -n "$LLAMA_SIMPLE" ]; then
  # llama-simple is greedy; it prints the prompt's pieces (BOS included) then the continuation.
  l=$(timeout 120 "$LLAMA_SIMPLE" -m "$STATE/a4.gguf" -n 32 "Once upon a time" 2>"$STATE/llama.err" || true)
  s=$("$SLQ" generate "$STATE/a4" "Once upon a time" -n 32 2>/dev/null)
  check "llama.cpp loads the GGUF (tokenizer metadata included) and generates" test -n "$l"
  check "llama.cpp's greedy 32 tokens equal slq's" test -n "$s" -a "${l%"$s"}" != "$l"
  [ "${l%"$s"}" != "$l" ] || { echo "llama.cpp: $l"; echo "slq:       $s"; tail -5 "$STATE/llama.err"; }
else
  echo "SKIP: no llama.cpp llama-simple (set SLQ_LLAMA_CPP_BIN_DIR or put it on PATH): loading the GGUF in llama.cpp not tested"
fi
summary
