"""Inferencer of the RGB + infrared detectors (Fusion-Mamba, DAMF): mmdet's ``DetInferencer``
for visible/infrared pairs.

The stock call style works unchanged::

    from mmfusion.apis.paired_det_inferencer import PairedDetInferencer
    inferencer = PairedDetInferencer(CONFIG, CHECKPOINT, device='cpu')
    result = inferencer(dict(img='visible/190001.jpg', img_ir='infrared/190001.jpg'),
                        out_dir='outputs', pred_score_thr=0.3, no_save_pred=False)
    result['predictions'][0]  # {'labels': [...], 'scores': [...], 'bboxes': [[x1, y1, x2, y2]]}

Inputs: ``dict(img=visible, img_ir=infrared)`` or a list of them; each image a file path or an
(H, W, 3) uint8 array in BGR order (as ``cv2.imread`` / mmdet's array inputs), both of one
size; or ``dict(img=folder, img_ir=folder)``, paired by file name. Boxes are in the pixels of
the given images (both, since the pair is registered).

Pictures (``out_dir/vis/<visible file name>``, or returned with ``return_vis``): the predictions
scoring above ``pred_score_thr`` drawn on the visible and on the infrared image side by side
(:class:`~mmfusion.visualization.paired_det_visualizer.PairedDetLocalVisualizer`; a config
naming mmdet's ``DetLocalVisualizer`` gets this subclass). Predictions as mmdet's
(``out_dir/preds/<name>.json`` unless ``no_save_pred``).

Registration: mmdet 3.2 has no inferencer registry (its ``DetInferencer`` is imported from
``mmdet.apis``), so this class is imported from its module path, as mmdet's is.
"""
import copy
import os.path as osp
import warnings
from typing import Iterable, List, Optional

import mmcv
import mmengine
import numpy as np
from mmdet.apis import DetInferencer
from mmdet.registry import DATASETS
from mmengine.dataset import Compose
from mmengine.fileio import isdir, join_path, list_dir_or_file

from mmfusion.datasets.transforms.paired_loading import LoadPairedImageFromFile

__all__ = ['PairedDetInferencer', 'PairedInferencerLoader']

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


class PairedInferencerLoader(LoadPairedImageFromFile):
    """``LoadPairedImageFromFile`` that also takes arrays: the inferencer's first transform.

    Required keys: ``img`` and ``img_ir``, each a path or an (H, W, 3) BGR array.
    Added keys: as :class:`LoadPairedImageFromFile` (``img_path``/``img_ir_path`` for paths).

    Raises:
        ValueError: If an input is neither a path nor an array, or the sizes differ.
    """

    def transform(self, results: dict) -> Optional[dict]:
        inputs = {k: results[k] for k in ('img', 'img_ir')}
        out = {k: v for k, v in results.items() if k not in inputs}
        if all(isinstance(v, str) for v in inputs.values()):
            out.update(img_path=inputs['img'], img_ir_path=inputs['img_ir'])
            return super().transform(out)
        for key, value in inputs.items():
            if isinstance(value, str):
                out[f'{key}_path'] = value
                flag = self.ir_color_type if key == 'img_ir' else self.color_type
                value = mmcv.imread(value, flag=flag)
            elif not isinstance(value, np.ndarray):
                raise ValueError(f'"{key}" must be a path or an array, got {type(value)}')
            out[key] = value.astype(np.float32) if self.to_float32 else value
        if out['img'].shape[:2] != out['img_ir'].shape[:2]:
            raise ValueError(f'visible image is {out["img"].shape[:2]} (H, W) but infrared '
                             f'image is {out["img_ir"].shape[:2]}; pairs must be registered')
        out['img_shape'] = out['ori_shape'] = out['img'].shape[:2]
        return out


class PairedDetInferencer(DetInferencer):
    """mmdet's ``DetInferencer`` for visible + infrared pairs (see the module docstring).

    Args:
        model (str | Config, optional): Config of a paired detector (its test pipeline starts
            with ``LoadPairedImageFromFile``).
        weights (str, optional): Checkpoint. Class names come from its ``dataset_meta``, else
            from the config's test dataset ``metainfo`` (not COCO's, as the stock fallback).
        device (str, optional): Torch device; None picks one.
        scope (str): Registry scope. Defaults to ``'mmdet'``.
        palette (str): As mmdet's. Defaults to ``'none'``.
        show_progress (bool): Progress bar. Defaults to True.

    Raises:
        ValueError: If the test pipeline has no ``LoadPairedImageFromFile``.
    """

    def _load_weights_to_model(self, model, checkpoint, cfg) -> None:
        """mmdet's loading; classes from the config when the checkpoint has none."""
        meta = (checkpoint or {}).get('meta', {}) if isinstance(checkpoint, dict) else {}
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            super()._load_weights_to_model(model, checkpoint, cfg)
        if 'dataset_meta' not in meta and 'CLASSES' not in meta:
            test_dataset = copy.deepcopy(cfg.test_dataloader.dataset)
            test_dataset['lazy_init'] = True
            metainfo = DATASETS.build(test_dataset).metainfo
            model.dataset_meta = dict(model.dataset_meta, classes=metainfo['classes'])

    def _init_pipeline(self, cfg) -> Compose:
        """The config's test pipeline, annotations dropped, loading by
        :class:`PairedInferencerLoader`."""
        pipeline_cfg = [t for t in copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
                        if t['type'] not in ('LoadAnnotations', 'mmdet.LoadAnnotations')]
        if 'meta_keys' in pipeline_cfg[-1]:
            pipeline_cfg[-1]['meta_keys'] = tuple(
                k for k in pipeline_cfg[-1]['meta_keys'] if k != 'img_id')
        idx = self._get_transform_idx(pipeline_cfg, ('LoadPairedImageFromFile',
                                                     'mmdet.LoadPairedImageFromFile'))
        if idx == -1:
            raise ValueError('PairedDetInferencer: LoadPairedImageFromFile is not in the test '
                             f'pipeline ({[t["type"] for t in pipeline_cfg]}); is this the '
                             'config of a paired RGB + infrared detector?')
        args = {k: v for k, v in pipeline_cfg[idx].items() if k != 'type'}
        pipeline_cfg[idx] = PairedInferencerLoader(**args)
        return Compose(pipeline_cfg)

    def _init_visualizer(self, cfg):
        """The config's visualizer, mmdet's stock one replaced by the paired subclass."""
        if 'visualizer' in cfg and str(cfg.visualizer.get('type', '')).split('.')[-1] == \
                'DetLocalVisualizer':
            cfg.visualizer.type = 'PairedDetLocalVisualizer'
        return super()._init_visualizer(cfg)

    def _inputs_to_list(self, inputs) -> list:
        """Pairs as a list of ``dict(img=..., img_ir=...)`` (folders paired by file name).

        Raises:
            ValueError: If an input is not such a dict, or a folder pair is incomplete.
        """
        if isinstance(inputs, dict):
            if isinstance(inputs.get('img'), str) and isdir(inputs['img']):
                names = sorted(list_dir_or_file(inputs['img'], list_dir=False,
                                                suffix=IMG_EXTENSIONS))
                inputs = [dict(img=join_path(inputs['img'], n),
                               img_ir=join_path(inputs['img_ir'], n)) for n in names]
                missing = [p['img_ir'] for p in inputs if not osp.isfile(p['img_ir'])]
                if missing:
                    raise ValueError(f'infrared partner(s) not found: {missing[:3]}')
            else:
                inputs = [inputs]
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        for item in inputs:
            if not isinstance(item, dict) or 'img' not in item or 'img_ir' not in item:
                raise ValueError('PairedDetInferencer takes dict(img=visible, img_ir=infrared) '
                                 f'or a list of them, got {type(item).__name__}')
        return inputs

    def preprocess(self, inputs: Iterable, batch_size: int = 1, **kwargs):
        """Yield ``(input pairs, collated batch)`` per batch (the stock code keeps only the
        visible image of a dict input, and collating the pairs would merge them)."""
        chunk = []
        for item in inputs:
            chunk.append(item)
            if len(chunk) == batch_size:
                yield chunk, self.collate_fn([self.pipeline(dict(p)) for p in chunk])
                chunk = []
        if chunk:
            yield chunk, self.collate_fn([self.pipeline(dict(p)) for p in chunk])

    @staticmethod
    def _to_rgb(value) -> np.ndarray:
        if isinstance(value, str):
            return mmcv.imfrombytes(mmengine.fileio.get(value), channel_order='rgb')
        return np.ascontiguousarray(value[..., ::-1] if value.ndim == 3 else value)

    def visualize(self, inputs: list, preds: list, return_vis: bool = False,
                  show: bool = False, wait_time: int = 0, draw_pred: bool = True,
                  pred_score_thr: float = 0.3, no_save_vis: bool = False,
                  img_out_dir: str = '', **kwargs) -> Optional[List[np.ndarray]]:
        """Draw each pair's predictions on both images; arguments as mmdet's ``visualize``.

        Returns:
            list[np.ndarray] | None: (H, 2 W, 3) RGB pictures if anything is drawn.
        """
        if no_save_vis:
            img_out_dir = ''
        if not show and img_out_dir == '' and not return_vis:
            return None
        if self.visualizer is None:
            raise ValueError('Visualization needs the "visualizer" term defined in the config')
        results = []
        for pair, pred in zip(inputs, preds):
            if isinstance(pair['img'], str):
                name = osp.basename(pair['img'])
            else:
                name = f'{str(self.num_visualized_imgs).zfill(8)}.jpg'
            out_file = osp.join(img_out_dir, 'vis', name) if img_out_dir else None
            image = dict(img=self._to_rgb(pair['img']), img_ir=self._to_rgb(pair['img_ir']))
            self.visualizer.add_datasample(
                name, image, pred, show=show, wait_time=wait_time, draw_gt=False,
                draw_pred=draw_pred, pred_score_thr=pred_score_thr, out_file=out_file)
            results.append(self.visualizer.get_image())
            self.num_visualized_imgs += 1
        return results
