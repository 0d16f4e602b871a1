#!/usr/bin/env bash
# Remakes models/tiny-caption-gpt2 end to end: caption corpus -> token files (TypeScript CLI) ->
# finetune.py --init tiny -> end-tag sampling check -> export_onnx.py -> onnxruntime-node check.
# The result is a test fixture (a 2-layer GPT-2 that has learned to write and close template
# captions), not a useful prompt model. About 5 minutes on 2 CPU cores.
#
#   training/make_tiny_model.sh            # WORK=/some/dir keeps the token files and checkpoint
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-/usr/bin/python3}
WORK=${WORK:-$(mktemp -d)}
OUT=models/tiny-caption-gpt2
STEPS=${STEPS:-200}

echo "== corpus"
"$PY" training/fixtures/make_corpus.py --lines 3000 --seed 1

echo "== tokenize (TypeScript data pipeline; Python never tokenizes)"
npx tsx src/adapters/cli/main.ts data tokenize --input training/fixtures/captions.txt --out "$WORK/data" \
  --tags --eval-fraction 0.1 --seed 1

echo "== finetune (random init, tiny preset)"
# A high learning rate suits a 1.6M-parameter model; batch 8 x block 64 = 512 tokens per step.
"$PY" training/finetune.py --init tiny --seed 1 --data "$WORK/data" --out "$WORK/checkpoint" \
  --max-steps "$STEPS" --lr 1e-2 --warmup 10 --batch-size 8 --block-size 64 \
  --eval-every 50 --eval-batches 4 --log-every 20 --device cpu

echo "== does it close captions? (temperature 0.9, top-k 50, end tag within 2x mean caption length)"
"$PY" training/sample_check.py --checkpoint "$WORK/checkpoint" --data "$WORK/data" \
  --samples 200 --temperature 0.9 --top-k 50 --seed 1 --min-fraction 0.9 --json "$WORK/sample_check.json"

echo "== export"
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
"$PY" training/export_onnx.py --checkpoint "$WORK/checkpoint" --out "$OUT.tmp"

echo "== onnxruntime-node vs golden.json"
node training/verify_onnx.mjs "$OUT.tmp"

"$PY" - "$WORK" "$OUT.tmp" <<'PY'
import json, os, sys
work, out = sys.argv[1], sys.argv[2]
t = json.load(open(os.path.join(work, "checkpoint", "training.json")))
s = json.load(open(os.path.join(work, "sample_check.json")))
size = os.path.getsize(os.path.join(out, "model.onnx"))
h = t["hyperparameters"]
readme = f"""# tiny-caption-gpt2 (test fixture)

A 2-layer GPT-2 (GPT-2 vocabulary, n_embd 32, 2 heads, 64 positions; {size / 1e6:.1f} MB ONNX)
trained from random weights on a synthetic, template-generated caption corpus. It exists so the
prompt engine, the ONNX export and the tag handling can be tested end to end on any machine. It is
**not a useful prompt model**: its vocabulary of phrases is the few dozen in
training/fixtures/make_corpus.py.

- Made by `training/make_tiny_model.sh` (corpus -> `data tokenize --tags` -> finetune.py --init tiny
  -> export_onnx.py), seed {h['seed']}, {t['steps']} steps of batch {h['batchSize']} x block {h['blockSize']}, lr {h['lr']} ({h['schedule']}).
- Data: {t['data']['trainTokens']} train / {t['data']['evalTokens']} eval tokens, {t['data']['trainDocuments']} training captions,
  tags {t['tags']['start']} ... {t['tags']['end']}, mean caption length {t['meanCaptionTokens']:.2f} tokens.
- Final loss: train {t['finalTrainLoss']:.3f}, eval {t['finalEvalLoss']:.3f} (random init: {t['initialEvalLoss']:.2f}).
- Closes its captions: {s['closed']}/{s['samples']} samples ({s['fraction']:.0%}) from "start tag + subject" reached the
  end tag within {s['maxNewTokens']} new tokens (temperature {s['temperature']}, top-k {s['topK']}).
- Files: model.onnx (decoder with KV cache), imagine-model.json (architecture, tags, provenance),
  golden.json (PyTorch reference logits and a cached greedy run, checked by the TypeScript tests
  and by training/verify_onnx.mjs).
"""
open(os.path.join(out, "README.md"), "w").write(readme)
PY

rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
echo "== done: $OUT ($(du -h "$OUT/model.onnx" | cut -f1) model.onnx); work files in $WORK"
