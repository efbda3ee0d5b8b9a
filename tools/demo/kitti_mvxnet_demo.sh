#!/usr/bin/env bash
# `make demo`: the stock mmdet3d MVX-Net trained and evaluated on the bundled 6-frame KITTI
# sample, through the stock-style tools, on CPU (or GPU when present).
#   1. tools/create_data.py kitti  -> infos, reduced point clouds, GT database
#   2. tools/train.py              -> a short schedule (see the config)
#   3. tools/test.py               -> KITTI 3D/BEV/2D AP (R11 and R40), printed and written to
#                                     $DEMO_DIR/test_metrics.json; predicted boxes projected on
#                                     the camera images in $DEMO_DIR/pictures/
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
DEMO_DIR=work_dirs/demo_kitti  # the config's data_root points into it
CONFIG=configs/mvxnet/mvxnet_fpn_dv_second_secfpn_1xb2-demo_kitti-sample-3d-3class.py

"$PYTHON" tools/create_data.py kitti --root-path tests/data/kitti --out-dir "$DEMO_DIR/data"
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$DEMO_DIR"
CKPT=$(cat "$DEMO_DIR/last_checkpoint")
rm -rf "$DEMO_DIR/pictures"
# score_thr 0: a few iterations from scratch leave scores below the stock 0.1, and the
# visualization hook draws nothing for a frame without boxes (KITTI AP ranks all boxes anyway)
"$PYTHON" tools/test.py "$CONFIG" "$CKPT" --work-dir "$DEMO_DIR" --show-dir "$DEMO_DIR/pictures" \
    --score-thr 0.0 --cfg-options model.test_cfg.pts.score_thr=0.0
"$PYTHON" - "$DEMO_DIR" <<'PY'
import glob, json, os.path as osp, sys
d = sys.argv[1]
m = json.load(open(osp.join(d, 'test_metrics.json')))
print('\nKITTI AP on the 6 sample frames (moderate, strict IoU; %):')
print(f'{"class":<12}{"3D R11":>8}{"3D R40":>8}{"BEV R11":>9}{"BEV R40":>9}{"2D R40":>8}')
for c in ('Car', 'Pedestrian', 'Cyclist'):
    g = lambda k: m.get(f'Kitti metric/pred_instances_3d/KITTI/{c}_{k}_moderate_strict', float('nan'))
    print(f'{c:<12}{g("3D_AP11"):>8.2f}{g("3D_AP40"):>8.2f}{g("BEV_AP11"):>9.2f}'
          f'{g("BEV_AP40"):>9.2f}{g("2D_AP40"):>8.2f}')
pics = sorted(glob.glob(osp.join(d, 'pictures', '**', '*.png'), recursive=True))
print(f'metrics: {osp.join(d, "test_metrics.json")}')
print(f'pictures ({len(pics)}): {osp.dirname(pics[0]) if pics else "none"}')
PY
