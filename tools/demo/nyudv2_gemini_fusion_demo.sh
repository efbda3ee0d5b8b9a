#!/usr/bin/env bash
# `make demo-rgbd`: GeminiFusion (MiT-B0-tiny) trained on the two NYUDv2 frames bundled with the
# tests, then evaluated with pictures and run through the RGB-D Inferencer, on CPU.
#   1. tools/train.py   -> the sample config shortened to $ITERS iterations (default 100)
#   2. tools/test.py --show-dir pictures -> mIoU of the rgb / depth / ensemble outputs; per frame
#      one picture: GT | ensemble prediction on the image | colour-mapped depth, class legend
#   3. demo/rgbd_seg_demo.py --streams on frame 000433 -> ensemble and each stream's prediction
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ITERS=${ITERS:-100}
WORK_DIR=work_dirs/gemini_fusion_nyudv2_demo
CONFIG=projects/GeminiFusion/configs/geminifusion_mit-b0-tiny_1xb2-300it_nyudv2-sample-rgbd-240x320.py
NYU=tests/data/nyudv2

rm -rf "$WORK_DIR"
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" --cfg-options \
    train_cfg.max_iters="$ITERS" train_cfg.val_interval="$ITERS" \
    default_hooks.checkpoint.interval="$ITERS" param_scheduler.1.end="$ITERS"
CKPT="$WORK_DIR/iter_$ITERS.pth"
"$PYTHON" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test" --show-dir pictures
"$PYTHON" demo/rgbd_seg_demo.py "$CONFIG" "$CKPT" "$NYU/rgb/000433.png" "$NYU/depth/000433.png" \
    --out-dir "$WORK_DIR/inferencer" --streams
"$PYTHON" - "$WORK_DIR" <<'PY'
import glob, json, os.path as osp, sys
d = sys.argv[1]
m = json.load(open(osp.join(d, 'test', 'test_metrics.json')))
print('\nmIoU on the 2 training frames: ' + ', '.join(
    f'{k} {v:.1f}' for k, v in sorted(m.items()) if k.endswith('mIoU')))
pics = sorted(glob.glob(osp.join(d, 'test', '*', 'pictures', '*')))
print(f'tools/test.py pictures ({len(pics)}; GT | prediction | depth): '
      f'{osp.dirname(pics[-1]) if pics else "none"}')
print(f"inferencer picture: {osp.join(d, 'inferencer', 'vis', '000433.png')}")
PY
