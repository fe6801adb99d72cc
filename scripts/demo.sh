#!/usr/bin/env bash
# The whole workflow on the bundled fonts, from a fresh checkout:
# set up .venv, render pairs, package them, train with the recommended spectral-norm
# recipe (README "Which SN setting?"), render a sentence in every learned style, move
# between two styles, and export one style as an installable font.
#   bash scripts/demo.sh            # experiment in experiments/demo
# On a CPU it trains a small 64 px model (12.5 minutes on 2 cores without bf16 instructions); with CUDA,
# the full 256 px zi2zi model. DEMO_STEPS overrides the number of training steps.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
EXP=${EXP:-experiments/demo}
RECIPE="--sn-generator --sn-discriminator --norm_D none"
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    # train.py's GPU defaults: bf16 + channels_last where the GPU has bf16 tensor cores
    SIZE=256; WIDTH=64; STEPS=${DEMO_STEPS:-20000}; EXTRA=""
elif "$PY" -c "import sys, torch; sys.exit(0 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 1)"; then
    # bf16 instructions (AVX-512 BF16, AMX): a step takes ~0.75x the time, so more steps fit
    SIZE=64; WIDTH=32; STEPS=${DEMO_STEPS:-1000}; EXTRA="--amp bf16"
else
    SIZE=64; WIDTH=32; STEPS=${DEMO_STEPS:-800}; EXTRA=""
fi
SRC=fonts/NotoSansSC-Subset.otf
PY="$PY" bash scripts/bundled_data.sh "$EXP" "$SIZE"
RESUME=""
if ls "$EXP"/checkpoint/*_state.pth >/dev/null 2>&1; then RESUME="--resume latest"; fi  # a rerun continues
"$PY" train.py --experiment_dir "$EXP" --image_size $SIZE --ngf $WIDTH --ndf $WIDTH --embedding_num 3 \
    --batch_size 16 --epoch 1000 --max_steps "$STEPS" --sample_steps 100 --checkpoint_steps 200 \
    --keep_last 3 --keep_best ssim $RECIPE $EXTRA $RESUME
"$PY" infer.py --experiment_dir "$EXP" --resume best --src_font "$SRC" --src_txt_file fonts/demo_text.txt \
    --run_all_label --save_dir "$EXP/infer"
"$PY" infer.py --experiment_dir "$EXP" --resume best --src_font "$SRC" --src_txt "永和九年岁在癸丑" \
    --interpolate 0,1,2 --steps 6 --save_dir "$EXP/infer"
"$PY" export_font.py --experiment_dir "$EXP" --resume best --label 1 --src_font "$SRC" \
    --charset data --out "$EXP/font/zi2zi-demo-wenkai.ttf" --family "zi2zi demo WenKai" \
    --specimen "$(cat fonts/demo_text.txt)"
echo
echo "Pictures:"
echo "  $EXP/infer/style_0.png, style_1.png, style_2.png   the demo sentence in each learned style"
echo "  $EXP/infer/interpolate_0-1-2.png (.gif)            moving from one style to the next"
echo "  $EXP/sample/                                       source | target | generated during training"
echo "  $EXP/logs/losses.png                               losses, D(real)/D(fake), SN and held-out curves"
echo "A font: $EXP/font/zi2zi-demo-wenkai.ttf (specimen: zi2zi-demo-wenkai.png), the WenKai style;"
echo "  install it by copying it to ~/.local/share/fonts and running fc-cache -f (Linux), or double-click it."
