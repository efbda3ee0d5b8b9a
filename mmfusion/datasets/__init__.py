"""Dataset classes (``paired_coco``: mmdet; ``nyudv2``: mmseg), the host-neutral
``normal_sample_selection``, and the data transforms in :mod:`mmfusion.datasets.transforms`.
Imported by the entry points, not here, so that one host never loads another."""
