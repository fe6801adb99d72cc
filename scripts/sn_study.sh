#!/usr/bin/env bash
# Which spectral-norm setting? Train a matrix of recipes at one fixed step budget on the
# bundled fonts (10% of the characters held out), over several seeds, and judge every run
# on the held-out characters with one compare.py report and a table averaged over seeds.
#
#   bash scripts/sn_study.sh              # CPU budget: 64 px, 300 steps a run (~2 min each on 2 cores)
#   bash scripts/sn_study.sh --full       # zi2zi's full setting: 256 px, 20,000 steps, for a GPU
#   SEEDS="1 2 3" STEPS=600 bash scripts/sn_study.sh
#
# Recipes: plain (zi2zi), SN on D, SN on G and D, each with BatchNorm in D and with
# none (--norm_D none; the generator keeps BatchNorm, it does not train without it),
# and SN on G and D with two-time-scale learning rates (--lr 1e-4 --lr_D 4e-4).
# Output: $OUT/report/report.html (+ metrics.json, grids) and $OUT/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
PY=.venv/bin/python
OUT=${OUT:-experiments/sn_study}
SEEDS=${SEEDS:-1 2}
if [ "${1:-}" = "--full" ]; then
    SIZE=256; WIDTH=64; STEPS=${STEPS:-20000}; DEVICE=(); AMP=(--amp bf16 --channels_last)
else
    SIZE=64; WIDTH=32; STEPS=${STEPS:-300}; DEVICE=(--device cpu)
    # bf16 autocast pays on CPUs with bf16 instructions (measured 1.3x here); else fp32
    AMP=()
    if "$PY" -c "import sys, torch; sys.exit(0 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 1)"; then
        AMP=(--amp bf16)
    fi
fi
declare -A RECIPES=(
    [plain]=""
    [plain_noD]="--norm_D none"
    [snD]="--sn-discriminator"
    [snD_noD]="--sn-discriminator --norm_D none"
    [snGD]="--sn-generator --sn-discriminator"
    [snGD_noD]="--sn-generator --sn-discriminator --norm_D none"
    [snGD_ttur]="--sn-generator --sn-discriminator --norm_D none --lr 0.0001 --lr_D 0.0004"
)
ORDER=(plain plain_noD snD snD_noD snGD snGD_noD snGD_ttur)

if [ ! -s "$OUT/data/val.obj" ]; then
    PY="$PY" bash scripts/bundled_data.sh "$OUT" "$SIZE"
fi

runs=()
for seed in $SEEDS; do
    for name in "${ORDER[@]}"; do
        exp="$OUT/runs/${name}_s$seed"
        runs+=(--run "$exp=${name}_s$seed")
        if [ -s "$exp/checkpoint/${STEPS}_state.pth" ]; then continue; fi   # a rerun skips finished runs
        resume=()
        if ls "$exp"/checkpoint/*_state.pth >/dev/null 2>&1; then resume=(--resume latest); fi
        flags=${RECIPES[$name]:-"(zi2zi recipe)"}
        echo "== $name, seed $seed: $flags"
        # shellcheck disable=SC2086  # a recipe is a list of flags
        "$PY" train.py --experiment_dir "$exp" --data_dir "$OUT/data" --image_size $SIZE --ngf $WIDTH --ndf $WIDTH \
            --embedding_num 3 --batch_size 16 --epoch 1000 --max_steps "$STEPS" --random_seed "$seed" \
            --sample_steps $((STEPS / 3)) --checkpoint_steps $((STEPS / 3)) --log_steps 10 \
            "${DEVICE[@]}" "${AMP[@]}" ${RECIPES[$name]} "${resume[@]}"
    done
done
"$PY" compare.py "${runs[@]}" --val_obj "$OUT/data/val.obj" --out_dir "$OUT/report" --checkpoints 3 \
    "${DEVICE[@]}"
"$PY" scripts/study_table.py "$OUT/report/metrics.json" --out "$OUT/table.md"
echo "report: $OUT/report/report.html   table: $OUT/table.md"
