#!/usr/bin/env bash
# The bundled fonts as training data: Noto Sans SC as the source, three target styles
# (label 0 Noto Serif SC, 1 LXGW WenKai, 2 Smiley Sans) over fonts/charset_demo.txt,
# packaged with 10% of the characters held out. Used by demo.sh, sn_study.sh and robustness_study.py.
#   bash scripts/bundled_data.sh OUT SIZE [CHARSET]   # pairs in OUT/pairs, train.obj/val.obj in OUT/data
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$1
SIZE=$2
CHARSET=${3:-fonts/charset_demo.txt}
PY=${PY:-.venv/bin/python}
label=0
for target in fonts/NotoSerifSC-Subset.otf fonts/WenKai-Subset.ttf fonts/SmileySans-Subset.ttf; do
    "$PY" font2img.py --src_font fonts/NotoSansSC-Subset.otf --dst_font "$target" --charset "$CHARSET" \
        --label $label --canvas_size "$SIZE" --char_size "$SIZE" --sample_count 0 \
        --sample_dir "$OUT/pairs" --overwrite
    label=$((label + 1))
done
"$PY" package.py --dir "$OUT/pairs" --save_dir "$OUT/data" --split_ratio 0.1 --split_by char
