# Test sets for seen and unseen RGB degradations (DAMF protocol, CVPR 2026): the clean test set
# and each degradation kind at one severity, the visible image degraded right after loading,
# with fixed noise per image (seed 0 mixed with the image name), the infrared image clean.
# Models and levels: mmfusion/datasets/transforms/degradations.py. Whether a set is "seen"
# follows the config's `train_degradation` (configs/_base_/degradations/rgb_degradation_train.py).
#
# Run every set and write a table:
#   python tools/analysis_tools/eval_degradations.py CONFIG CHECKPOINT \
#       --test-sets degradation_test_sets
# Another severity: override the sets in the config, or use --kinds/--severities instead.
degradation_test_sets = dict(
    clean=None,
    overexposure=dict(type='RGBDegradation', kind='overexposure', severity=3, seed=0),
    underexposure=dict(type='RGBDegradation', kind='underexposure', severity=3, seed=0),
    night=dict(type='RGBDegradation', kind='night', severity=3, seed=0),
    blur=dict(type='RGBDegradation', kind='blur', severity=3, seed=0),
    defocus_blur=dict(type='RGBDegradation', kind='defocus_blur', severity=3, seed=0),
    fog=dict(type='RGBDegradation', kind='fog', severity=3, seed=0),
)
