#!/bin/bash
# usage: run.sh NAME MODEL DATA SCALES [extra args...]
name=$1; model=$2; data=$3; scales=$4; shift 4
cd /work/wt-s10-b
case $model in
  ts) M="/work/shared/models/tinystories-656k";;
  s260) M="/work/shared/models/stories260k/stories260K.bin --tokenizer /work/shared/models/stories260k/tok512.bin";;
esac
SLQ_DEBUG_WINDOWS=1 SLQ_DEBUG_HELDOUT_ALL=1 nice -n 5 ${BIN:-build/server/main/slq} quantize $M --data $data --formats 4-5-6-7-8 ${HEAD---quantize-head} ${QG:---quantizers rtn,gptq --grids both} --device cpu --json --profile-cache /tmp/s10b/cache --cloze-items 0 --target 'ear>=0.99' --scales $scales "$@" > /tmp/s10b/runs/$name.json 2>/tmp/s10b/runs/$name.err
echo "$name rc=$?"
