#!/usr/bin/env bash
# Makes models/caption-gpt2-small, the shipped default prompt model, end to end:
# real captions from ../shared/data (training/default_corpus.py: sources, licences, filter)
# -> `data prepare` (cleaning, explicit captions dropped, tags) -> finetune.py --init caption-small
# -> end-tag sampling check -> export_onnx.py -> onnxruntime-node check.
# About 30 minutes on one CPU core once OpenBLAS is installed; without it, ~20x slower:
#   apt-get update && apt-get install -y libopenblas0-pthread   # takes over libblas.so.3
#
#   training/make_default_model.sh      # DATA=../shared/data WORK=/some/dir STEPS=1000
# The data card (models/caption-gpt2-small/README.md) is written afterwards by
# training/default_model_card.py, which also runs the prompt-quality harness.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-/usr/bin/python3}
DATA=${DATA:-../shared/data}
WORK=${WORK:-$(mktemp -d)}
OUT=models/caption-gpt2-small
STEPS=${STEPS:-1000}
# One thread: the project's build machine is shared; OpenBLAS runs the large matmuls well on one.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

echo "== corpus (real captions, filtered)"
"$PY" training/default_corpus.py --data "$DATA" --out "$WORK/corpus.txt"

echo "== prepare (TypeScript data pipeline: cleaning, explicit filter, tags, tokens)"
npx tsx src/adapters/cli/main.ts data prepare --input "$WORK/corpus.txt" --out "$WORK/data" \
  --no-limit --tags --eval-fraction 0.05 --seed 1 --workers 1 --json > "$WORK/prepare.json"

echo "== finetune (random init, caption-small preset)"
# 1,024 tokens per step; a high learning rate suits a 5M-parameter model trained from scratch.
"$PY" training/finetune.py --init caption-small --seed 1 --data "$WORK/data" --out "$WORK/checkpoint" \
  --max-steps "$STEPS" --lr 3e-3 --warmup 30 --batch-size 8 --block-size 128 \
  --eval-every 100 --eval-batches 8 --log-every 20 --save-every 100 --resume --device cpu

echo "== does it close captions? (temperature 0.9, top-k 50, end tag within 2x mean caption length)"
"$PY" training/sample_check.py --checkpoint "$WORK/checkpoint" --data "$WORK/data" \
  --samples 200 --temperature 0.9 --top-k 50 --seed 1 --min-fraction 0.9 --json "$WORK/sample_check.json"

echo "== export"
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
# The cap on new tokens: the training captions' 99th percentile length (69 tokens), rounded;
# the model closes its captions itself, so the cap only stops a runaway row.
"$PY" training/export_onnx.py --checkpoint "$WORK/checkpoint" --out "$OUT.tmp" --max-new-tokens 64
node training/verify_onnx.mjs "$OUT.tmp"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
echo "== done: $OUT ($(du -h "$OUT/model.onnx" | cut -f1) model.onnx); work files in $WORK"
