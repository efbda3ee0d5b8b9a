#!/usr/bin/env bash
# `make demo-rgbir`: the small Fusion-Mamba trained on the 6 LLVIP pairs bundled with the tests
# (train = test), then evaluated with pictures and run through the paired Inferencer, on CPU.
#   1. tools/create_data.py llvip + tools/misc/merge_coco_json.py -> one COCO json, 6 pairs
#   2. tools/train.py   -> 150 epochs of one batch of 6 (about 3 min on 2 cores, 1 thread)
#   3. tools/test.py --show-dir pictures -> COCO mAP50 printed; per pair one picture: GT (green)
#      above predictions with score > 0.3 (red), on the visible | infrared image
#   4. demo/paired_det_demo.py on pair 190001 -> predictions on both images + json
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # the selective scans run faster on one thread
WORK_DIR=work_dirs/fusion_mamba_llvip_overfit  # the config's ann_file points into it
CONFIG=projects/FusionMamba/configs/fusion-mamba-small_yolox_1xb6-150e_llvip-sample.py
LLVIP=tests/data/llvip/LLVIP

rm -rf "$WORK_DIR"
"$PYTHON" tools/create_data.py llvip --root-path "$LLVIP" --out-dir "$WORK_DIR/data" \
    --extra-tag llvip_sample
"$PYTHON" tools/misc/merge_coco_json.py "$WORK_DIR/data/llvip_sample_infos_train.json" \
    "$WORK_DIR/data/llvip_sample_infos_test.json" --out "$WORK_DIR/data/llvip_sample_infos_all.json"
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" --cfg-options randomness.seed=0
"$PYTHON" tools/test.py "$CONFIG" "$WORK_DIR/epoch_150.pth" --work-dir "$WORK_DIR/test" \
    --show-dir pictures --score-thr 0.3
"$PYTHON" demo/paired_det_demo.py "$CONFIG" "$WORK_DIR/epoch_150.pth" \
    "$LLVIP/visible/test/190001.jpg" "$LLVIP/infrared/test/190001.jpg" \
    --out-dir "$WORK_DIR/inferencer" --pred-score-thr 0.3
"$PYTHON" - "$WORK_DIR" <<'PY'
import glob, json, os.path as osp, sys
d = sys.argv[1]
m = json.load(open(osp.join(d, 'test', 'test_metrics.json')))
print(f"\nCOCO on the 6 training pairs: mAP50 {m['coco/bbox_mAP_50']:.3f}, "
      f"mAP50:95 {m['coco/bbox_mAP']:.3f}")
pics = sorted(glob.glob(osp.join(d, 'test', '*', 'pictures', '*')))
print(f'tools/test.py pictures ({len(pics)}; GT row above predictions, visible | infrared): '
      f'{osp.dirname(pics[-1]) if pics else "none"}')
print(f"inferencer picture: {osp.join(d, 'inferencer', 'vis', '190001.jpg')}")
PY
