"""mmseg's IoU metric on several predictions of one model (per-modality streams and ensemble).

GeminiFusion (Jia et al., ICML 2024, arXiv 2406.01210), like TokenFusion before it, reports the
RGB stream, the depth stream and their ensemble; the official ``validate`` in ``main.py`` keeps
one confusion matrix per output. Here each output is scored by mmseg's own
:class:`~mmseg.evaluation.IoUMetric` arithmetic (``intersect_and_union``,
``total_area_to_metrics``): mIoU is the mean over classes with a non-empty union of prediction and
label (classes absent from both are NaN and left out), in percent.
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

from mmengine.logging import print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

__all__ = ['MultiOutputIoUMetric']


@METRICS.register_module()
class MultiOutputIoUMetric(IoUMetric):
    """IoU metrics for every prediction field of a data sample.

    Args:
        outputs (dict[str, str]): Output name -> data-sample field holding its prediction
            (PixelData (1, H, W) of class indices). Default: ``ensemble`` -> ``pred_sem_seg``,
            ``rgb`` -> ``pred_sem_seg_rgb``, ``depth`` -> ``pred_sem_seg_depth`` (the fields of
            :class:`~mmfusion.models.segmentors.GeminiFusionEncoderDecoder`).
        **kwargs: :class:`~mmseg.evaluation.IoUMetric` arguments (``ignore_index``,
            ``iou_metrics``, ``nan_to_num``, ``beta``, ``collect_device``, ``prefix``).

    Returns (``compute_metrics``): ``{'<output>/<metric>': value}``, e.g. ``ensemble/mIoU``,
    ``rgb/mAcc``, ``depth/aAcc`` (percent, as IoUMetric); a per-class table per output is logged.

    Raises:
        ValueError: If ``outputs`` is empty, or ``format_only``/``output_dir`` is given (use
            mmseg's ``IoUMetric`` to write prediction files); from ``process``, if a data sample
            lacks one of the output fields.
    """

    def __init__(self,
                 outputs: Optional[Dict[str, str]] = None,
                 **kwargs) -> None:
        if kwargs.get('format_only') or kwargs.get('output_dir'):
            raise ValueError(f'{self.__class__.__name__} only evaluates; use IoUMetric with '
                             'format_only/output_dir to write prediction files')
        super().__init__(**kwargs)
        self.outputs = dict(outputs) if outputs is not None else dict(
            ensemble='pred_sem_seg', rgb='pred_sem_seg_rgb', depth='pred_sem_seg_depth')
        if not self.outputs:
            raise ValueError('outputs must name at least one prediction field')

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store per-output (intersection, union, prediction, label) areas of each sample."""
        num_classes = len(self.dataset_meta['classes'])
        for data_sample in data_samples:
            label = data_sample['gt_sem_seg']['data'].squeeze()
            areas = {}
            for name, field in self.outputs.items():
                if field not in data_sample:
                    raise ValueError(f'data sample of {data_sample.get("img_path")} has no '
                                     f'"{field}" (output "{name}")')
                pred = data_sample[field]['data'].squeeze()
                areas[name] = self.intersect_and_union(pred, label.to(pred), num_classes,
                                                       self.ignore_index)
            self.results.append(areas)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """IoUMetric's metrics for each output, keys prefixed ``<output>/``."""
        metrics = OrderedDict()
        for name in self.outputs:
            print_log(f'{self.__class__.__name__}: output "{name}"', logger='current')
            for key, value in super().compute_metrics([r[name] for r in results]).items():
                metrics[f'{name}/{key}'] = value
        return metrics
