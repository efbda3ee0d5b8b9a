# Per-scene test sets (DAMF protocol, CVPR 2026): normal, overexposed, underexposed and night
# scenes. Our reading (the paper's split is not public): the scenes are synthesised from the clean
# test set with the degradation models of mmfusion/datasets/transforms/degradations.py at
# severity 3, fixed noise per image (seed 0), visible image only. (A dataset whose visible images
# are already night scenes, such as LLVIP, makes "normal" the clean set as recorded.)
#
#   python tools/analysis_tools/eval_degradations.py CONFIG CHECKPOINT --test-sets scene_test_sets
scene_test_sets = dict(
    normal=None,
    overexposed=dict(type='RGBDegradation', kind='overexposure', severity=3, seed=0),
    underexposed=dict(type='RGBDegradation', kind='underexposure', severity=3, seed=0),
    night=dict(type='RGBDegradation', kind='night', severity=3, seed=0),
)
