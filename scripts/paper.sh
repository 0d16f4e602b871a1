#!/usr/bin/env bash
# The paper's three arms in one command (see training/README.md, "Reproducing the paper's three
# arms", for the steps this automates, and the top-level README's "The paper in one command").
#
#   scripts/paper.sh [--preset full|toy] [--work DIR] [--out DIR] [--laion FILE]
#
# full (default; a CUDA GPU, internet, and by estimate ~50 GB of disk: gpt2-xl's weights, three
#   ONNX exports and two checkpoints of 6-8 GB each):
#   1. LAION-400M metadata part 00000 (the part the first 450,000 captions come from), downloaded
#      resumably (rerun to continue) and checked against the server's Content-Length, and against
#      LAION_SHA256 when set (no published checksum for this part could be confirmed);
#      --laion FILE uses a copy you already have.
#   2. `imagine-bot data prepare` on the first 450,000 captions, twice: with tags and without.
#   3. gpt2-xl through `imagine-bot models pull gpt2-xl --keep-weights` (verified, resumable,
#      converted to ONNX): the base arm, and the checkpoint the finetunes start from.
#   4. training/finetune.py twice (first 42 of 48 blocks frozen, bf16, one epoch, resumable),
#      each exported to a model directory.
#   5. OUT/paper-config.json with the arms base, ft-no-tags and ft-tags: the same sampling and
#      the same generation length on all three (⌈mean GPT-2 tokens of the training captions⌉).
#      Use it with IMAGINE_CONFIG=OUT/paper-config.json imagine-bot prompt "a lighthouse" --arm base
#
# toy: the same steps on CPU in about a minute, for the test suite (test/paper/toy.test.ts): 300
#   captions from training/fixtures/captions.txt instead of the download, a random 2-block GPT-2
#   ("tiny") as the base with 1 block frozen, 4 training steps.
#
# Every step is skipped when its output is complete, so a stopped run continues where it stopped.
# Environment: IMAGINE_PYTHON (default /usr/bin/python3, needs torch), LAION_URL, LAION_SHA256,
# HF_ENDPOINT/HF_TOKEN (for the gpt2-xl pull), FINETUNE_ARGS (extra finetune.py flags).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PRESET=full
WORK=
OUT=
LAION=
while [[ $# -gt 0 ]]; do
  case $1 in
    --preset) PRESET=${2:?--preset needs full or toy}; shift 2 ;;
    --work) WORK=${2:?--work needs a folder}; shift 2 ;;
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    --laion) LAION=${2:?--laion needs a parquet file}; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "paper.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $PRESET in full|toy) ;; *) echo "paper.sh: --preset is full or toy, not $PRESET" >&2; exit 2 ;; esac
WORK=$(realpath -m "${WORK:-paper-work/$PRESET}")
OUT=$(realpath -m "${OUT:-paper/$PRESET}")
PY=${IMAGINE_PYTHON:-/usr/bin/python3}
CLI=(node --import tsx "$ROOT/src/adapters/cli/main.ts")
mkdir -p "$WORK" "$OUT/models"

die() { echo "paper.sh: $*" >&2; exit 1; }
step() { echo "== $*"; }

"$PY" -c "import torch" 2>/dev/null ||
  die "$PY cannot import torch: install it (Debian: sudo apt-get install python3-torch) or set IMAGINE_PYTHON"

if [[ $PRESET == full ]]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" ||
    die "--preset full finetunes gpt2-xl and needs a CUDA GPU, which $PY's torch does not see; --preset toy runs on CPU"
  LIMIT=450000
  FREEZE=42
  WORKERS=$(nproc)
  TRAIN=(--epochs 1 --lr 1e-4 --batch-size 8 --grad-accum 4 --block-size 128 --device cuda --bf16
    --save-every 200 --eval-every 200)
else
  LIMIT=300
  FREEZE=1
  WORKERS=1
  TRAIN=(--max-steps 4 --lr 1e-2 --batch-size 4 --block-size 32 --device cpu
    --eval-every 2 --eval-batches 2 --log-every 2)
fi
read -r -a EXTRA <<<"${FINETUNE_ARGS:-}"

# ---------------------------------------------------------------------------------------- data
LAION_URL=${LAION_URL:-https://the-eye.eu/public/AI/cah/laion400m-met-release/laion400m-meta/part-00000-5b54c5d5-bbcf-484d-a2ce-0d6f73df1a36-c000.snappy.parquet}

source "$ROOT/scripts/paper-download.sh"

if [[ -n $LAION ]]; then
  SOURCE=$(realpath "$LAION")
elif [[ $PRESET == full ]]; then
  SOURCE=$WORK/laion400m-meta-part-00000.parquet
  if [[ ! -f $SOURCE ]]; then
    step "LAION-400M metadata part 00000 ← $LAION_URL"
    download "$LAION_URL" "$SOURCE"
  fi
else
  SOURCE=$ROOT/training/fixtures/captions.txt
fi

for variant in tags no-tags; do
  if [[ ! -f $WORK/data-$variant/report.json ]]; then
    step "data prepare --$variant: first $LIMIT captions of $(basename "$SOURCE")"
    "${CLI[@]}" data prepare --input "$SOURCE" --out "$WORK/data-$variant" --limit "$LIMIT" \
      --"$variant" --eval-fraction 0.1 --seed 1 --workers "$WORKERS"
  fi
done
# The paper's generation length: the mean GPT-2 token length of the training captions.
MEAN=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).train.meanCaptionTokens)' \
  "$WORK/data-tags/report.json")
MAX_NEW=$(node -e 'console.log(Math.ceil(Number(process.argv[1])))' "$MEAN")
echo "mean caption length $MEAN GPT-2 tokens: every arm generates at most $MAX_NEW"

# ---------------------------------------------------------------------------------------- base
BASE_DIR=$OUT/models/base
if [[ $PRESET == full ]]; then
  # The model directory doubles as the finetunes' starting checkpoint (config.json + weights).
  BASE_CHECKPOINT=$BASE_DIR
  if [[ ! -f $BASE_DIR/model.safetensors || ! -f $BASE_DIR/imagine-model.json ]]; then
    step "base: models pull gpt2-xl"
    "${CLI[@]}" models pull gpt2-xl --dir "$OUT/models" --name base --keep-weights --no-register \
      --mean-caption-tokens "$MEAN"
  fi
else
  BASE_CHECKPOINT=$WORK/base-checkpoint
  if [[ ! -f $BASE_CHECKPOINT/model.safetensors ]]; then
    step "base: random tiny GPT-2 checkpoint (seed 1)"
    "$PY" - "$ROOT/training" "$BASE_CHECKPOINT" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import torch
from checkpoint import save_pretrained
from gpt2 import GPT2LMHeadModel, preset
torch.manual_seed(1)
save_pretrained(GPT2LMHeadModel(preset("tiny")), sys.argv[2])
PY
  fi
  if [[ ! -f $BASE_DIR/imagine-model.json ]]; then
    step "base: export"
    rm -rf "$BASE_DIR.tmp"
    "$PY" training/export_onnx.py --checkpoint "$BASE_CHECKPOINT" --out "$BASE_DIR.tmp" \
      --no-tags --mean-caption-tokens "$MEAN"
    mv "$BASE_DIR.tmp" "$BASE_DIR"
  fi
fi

# ------------------------------------------------------------------------------------ finetunes
for variant in no-tags tags; do
  dir=$OUT/models/ft-$variant
  if [[ ! -f $dir/imagine-model.json ]]; then
    step "ft-$variant: finetune.py --freeze $FREEZE"
    rm -rf "$dir.tmp"
    "$PY" training/finetune.py --base "$BASE_CHECKPOINT" --data "$WORK/data-$variant" \
      --out "$WORK/checkpoint-ft-$variant" --freeze "$FREEZE" --seed 1 --resume \
      "${TRAIN[@]}" ${EXTRA[@]+"${EXTRA[@]}"} --export "$dir.tmp"
    mv "$dir.tmp" "$dir"
  fi
done

# ------------------------------------------------------------------------------------- register
# One sampling for all three arms, written out so that no per-arm setting of the configuration
# underneath (config/default.json gives its ft-tags arm its own) changes one arm only.
step "register: $OUT/paper-config.json"
node - "$ROOT/config/default.json" "$OUT/paper-config.json" "$MAX_NEW" <<'JS'
const fs = require("node:fs");
const [defaults, file, maxNew] = process.argv.slice(2);
const sampling = JSON.parse(fs.readFileSync(defaults, "utf8")).sampling;
const arm = (dir) => ({ kind: "onnx", modelDir: `models/${dir}`, maxNewTokens: Number(maxNew), sampling });
const config = {
  defaultArm: "ft-tags",
  arms: { base: arm("base"), "ft-no-tags": arm("ft-no-tags"), "ft-tags": arm("ft-tags") },
};
fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(config, null, 2)}\n`);
fs.renameSync(`${file}.tmp`, file);
JS
echo "done: IMAGINE_CONFIG=$OUT/paper-config.json imagine-bot prompt \"a lighthouse\" --arm base   (or ft-no-tags, ft-tags)"
