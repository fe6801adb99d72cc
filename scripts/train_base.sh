#!/usr/bin/env bash
# A base model from many fonts: every font of FONTS (a folder, or a list file as
# docs/corpus_fonts.txt) becomes one style label drawn from one source font; the pairs are
# packaged with 5% of the characters held out and one model is trained on all of them.
# Fine-tune a new style from it with `train.py --init_from OUT:best --recipe few_shot`
# (docs/few_shot.md). No weights are downloaded or shipped: a base is trained once, here.
#
#   bash scripts/train_base.sh FONTS OUT            # CPU setting: 64 px, widths 32
#   bash scripts/train_base.sh FONTS OUT --gpu      # zi2zi's setting: 256 px, widths 64, batch 64
#   STEPS=3000 CHARSET=FREQ1000 bash scripts/train_base.sh docs/corpus_fonts.txt experiments/base
#
# Environment: SRC_FONT / SRC_INDEX (source font and face; default Noto Sans CJK SC from
# Debian's fonts-noto-cjk), CHARSET (CPU: FREQ1000; GPU: CN, GB2312's 6,763 hanzi), STEPS
# (CPU: 1500; GPU: 40000), BATCH (CPU 16, GPU 64), SEED; other arguments go to train.py.
# Output: OUT/checkpoint (best.json names the best held-out SSIM), OUT/data/{train,val}.obj
# and OUT/styles.json (label -> family, file, coverage), which infer.py's --type_file reads.
# A rerun continues an interrupted base (--resume latest) and draws nothing again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
    sed -n 2,17p "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
FONTS=$1
OUT=$2
shift 2
GPU=0
if [ "${1:-}" = "--gpu" ]; then GPU=1; shift; fi
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { bash scripts/setup.sh >/dev/null; }
SRC_FONT=${SRC_FONT:-/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc}
SRC_INDEX=${SRC_INDEX:-2}
SEED=${SEED:-777}
if [ "$GPU" = 1 ]; then
    SIZE=256; WIDTH=64; CHARSET=${CHARSET:-CN}; STEPS=${STEPS:-40000}; BATCH=${BATCH:-64}; DEVICE=()
else
    SIZE=64; WIDTH=32; CHARSET=${CHARSET:-FREQ1000}; STEPS=${STEPS:-1500}; BATCH=${BATCH:-16}; DEVICE=(--device cpu)
    # bf16 autocast pays on CPUs with bf16 instructions; elsewhere fp32
    if "$PY" -c "import sys, torch; sys.exit(0 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 1)"; then
        DEVICE+=(--amp bf16)
    fi
fi

if [ ! -s "$OUT/data/train.obj" ]; then
    "$PY" font2img.py --src_font "$SRC_FONT" --src_font_index "$SRC_INDEX" --dst_fonts "$FONTS" \
        --charset "$CHARSET" --filter --char_size "$SIZE" --canvas_size "$SIZE" --sample_count 0 \
        --sample_dir "$OUT/pairs" --overwrite
    "$PY" package.py --dir "$OUT/pairs" --save_dir "$OUT/data" --split_ratio 0.05 --split_by char --seed "$SEED"
    cp "$OUT/pairs/styles.json" "$OUT/styles.json"
fi
labels=$("$PY" -c "import json, sys; print(len(json.load(open(sys.argv[1]))['styles']))" "$OUT/styles.json")
resume=()
if ls "$OUT"/checkpoint/*_state.pth >/dev/null 2>&1; then resume=(--resume latest); fi
# SN on both networks and no BatchNorm in D: docs/sn_study.md's recommendation
"$PY" train.py --experiment_dir "$OUT" --image_size "$SIZE" --ngf "$WIDTH" --ndf "$WIDTH" \
    --embedding_num "$labels" --sn-generator --sn-discriminator --norm_D none \
    --batch_size "$BATCH" --epoch 100000 --max_steps "$STEPS" --random_seed "$SEED" \
    --sample_steps $((STEPS / 5)) --checkpoint_steps $((STEPS / 5)) --keep_best ssim --keep_last 2 \
    "${DEVICE[@]}" "${resume[@]}" "$@"
echo "base: $OUT (checkpoint/best.json), styles: $OUT/styles.json"
