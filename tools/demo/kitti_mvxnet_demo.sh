#!/usr/bin/env bash
# `make demo`: the stock mmdet3d MVX-Net trained and evaluated on the bundled 6-frame KITTI
# sample, through the stock-style tools, on CPU (or GPU when present).
#   1. tools/create_data.py kitti  -> infos, reduced point clouds, GT database
#   2. tools/train.py              -> a short schedule (see the config)
#   3. tools/test.py --show-dir    -> KITTI 3D/BEV/2D AP (R11 and R40), printed and written to
#                                     $DEMO_DIR/test_metrics.json; per frame one picture in
#                                     $DEMO_DIR/<timestamp>/pictures/: the camera image with the
#                                     GT boxes (green) above it with the predictions scoring
#                                     > 0.3 (red, class and score), a bird's-eye view of the
#                                     points with both on the right
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
DEMO_DIR=work_dirs/demo_kitti  # the config's data_root points into it
CONFIG=configs/mvxnet/mvxnet_fpn_dv_second_secfpn_1xb2-demo_kitti-sample-3d-3class.py

"$PYTHON" tools/create_data.py kitti --root-path tests/data/kitti --out-dir "$DEMO_DIR/data"
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$DEMO_DIR"
CKPT=$(cat "$DEMO_DIR/last_checkpoint")
# the head keeps every box after NMS (score_thr 0: KITTI AP ranks them all; six iterations from
# scratch score below the stock 0.1); the pictures draw those above --score-thr
"$PYTHON" tools/test.py "$CONFIG" "$CKPT" --work-dir "$DEMO_DIR" --show-dir pictures \
    --score-thr 0.3 --cfg-options model.test_cfg.pts.score_thr=0.0
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
pics = sorted(glob.glob(osp.join(d, '*', 'pictures', '*.png')))
print(f'metrics: {osp.join(d, "test_metrics.json")}')
print(f'pictures ({len(pics)}; camera GT above camera predictions > 0.3, bird\'s-eye view '
      f'right): {osp.dirname(pics[-1]) if pics else "none"}')
PY
