"""Inferencer of the RGB + depth segmentors (GeminiFusion): mmseg's ``MMSegInferencer`` for
RGB-D frames.

The stock call style works unchanged::

    from mmfusion.apis.rgbd_seg_inferencer import RGBDSegInferencer
    inferencer = RGBDSegInferencer(CONFIG, CHECKPOINT, device='cpu')
    result = inferencer(dict(img='rgb/000433.png', depth='depth/000433.png'),
                        out_dir='outputs', return_streams=True)
    result['predictions']  # {'sem_seg': (H, W) ensemble, 'sem_seg_rgb': ..., 'sem_seg_depth': ...}

Inputs: ``dict(img=rgb, depth=depth)`` or a list of them. ``img``: a file path or an (H, W, 3)
uint8 BGR array (as mmseg's array inputs). ``depth``: a path to the 16-bit depth PNG the
dataset uses (metres x the config's ``LoadDepthFromFile.depth_scale``), or an (H, W) array:
float metres, or uint16 in the same stored units. Pixel-aligned with the image.

Outputs, as mmseg's: ``predictions`` is the (H, W) class map of the ensemble (one frame) or a
list of them; with ``return_streams=True`` each prediction is a dict holding the ensemble
(``sem_seg``) and each stream's map (``sem_seg_rgb``, ``sem_seg_depth``). ``out_dir/pred/``
gets the ensemble maps as PNG (as mmseg), ``out_dir/vis/`` the pictures of
:class:`~mmfusion.visualization.rgbd_seg_visualizer.RGBDSegLocalVisualizer` (overlay on RGB,
colour-mapped depth, per-class legend; with ``return_streams`` also each stream's overlay).

Registration: mmseg 1.2 does not register its ``MMSegInferencer`` (it is imported from
``mmseg.apis``), so this class is imported from its module path, as mmseg's is.
"""
import copy
import os.path as osp
from typing import List, Optional

import mmcv
import numpy as np
from mmengine.dataset import Compose
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from mmseg.apis import MMSegInferencer
from mmseg.registry import DATASETS

__all__ = ['RGBDSegInferencer', 'RGBDInferencerLoader']

STREAM_KEYS = ('pred_sem_seg_rgb', 'pred_sem_seg_depth')


class RGBDInferencerLoader:
    """Load an RGB image and its depth map from paths or arrays: the inferencer's first step.

    Args:
        depth_scale (float): Stored depth units per metre. Defaults to 5000.

    Input keys: ``img`` and ``depth`` (see the module docstring).
    Output keys: ``img`` ((H, W, 3) BGR), ``img_depth`` ((H, W) float32 metres), ``img_path``
    and ``depth_path`` for paths, ``img_shape``, ``ori_shape``.

    Raises:
        ValueError: For an unsupported input type, a depth file that is not 16-bit single
            channel, or an image and depth of different sizes.
        FileNotFoundError: If a file does not exist.
    """

    def __init__(self, depth_scale: float = 5000.0, **kwargs) -> None:
        self.depth_scale = float(depth_scale)

    def __call__(self, inputs: dict) -> dict:
        results = {}
        img = inputs['img']
        if isinstance(img, str):
            if not osp.isfile(img):
                raise FileNotFoundError(f'image file {img} not found')
            results['img_path'] = img
            img = mmcv.imread(img)
        elif not isinstance(img, np.ndarray):
            raise ValueError(f'"img" must be a path or an array, got {type(img)}')
        depth = inputs['depth']
        if isinstance(depth, str):
            if not osp.isfile(depth):
                raise FileNotFoundError(f'depth file {depth} not found')
            results['depth_path'] = depth
            raw = mmcv.imread(depth, flag='unchanged')
            if raw is None or raw.ndim != 2 or raw.dtype != np.uint16:
                raise ValueError(f'depth file {depth} must be a single-channel 16-bit PNG')
            depth = raw
        elif not isinstance(depth, np.ndarray):
            raise ValueError(f'"depth" must be a path or an array, got {type(depth)}')
        if depth.dtype == np.uint16:
            depth = depth.astype(np.float32) / np.float32(self.depth_scale)
        if img.shape[:2] != depth.shape[:2]:
            raise ValueError(f'image is {img.shape[:2]} (H, W) but depth is {depth.shape[:2]}; '
                             'they must be pixel-aligned')
        results.update(img=img, img_depth=depth.astype(np.float32), img_shape=img.shape[:2],
                       ori_shape=img.shape[:2])
        return results


class RGBDSegInferencer(MMSegInferencer):
    """mmseg's ``MMSegInferencer`` for RGB + depth frames (see the module docstring).

    Args:
        model (str | Config): Config of an RGB + depth segmentor (its test pipeline has
            ``LoadImageFromFile`` and ``LoadDepthFromFile``).
        weights (str, optional): Checkpoint. Classes and palette come from its
            ``dataset_meta``, else from the config's test dataset (not Cityscapes', as the
            stock fallback).
        device (str, optional): Torch device; None picks one.
        **kwargs: ``classes``, ``palette``, ``dataset_name``, ``scope`` as mmseg's.

    Raises:
        ValueError: If the test pipeline lacks either loader.
    """

    return_streams = False  # set per call by ``__call__``

    def __call__(self, inputs, return_streams: bool = False, **kwargs) -> dict:
        """mmseg's ``__call__``; ``return_streams`` adds each stream's class map to the
        predictions and its overlay to the pictures."""
        self.return_streams = return_streams
        try:
            return super().__call__(inputs, **kwargs)
        finally:
            self.return_streams = False

    def _load_weights_to_model(self, model, checkpoint, cfg) -> None:
        """mmseg's loading; classes and palette the checkpoint lacks come from the config's
        test dataset."""
        meta = checkpoint.get('meta', {}) if isinstance(checkpoint, dict) else {}
        if 'dataset_meta' in meta or 'CLASSES' in meta:
            super()._load_weights_to_model(model, checkpoint, cfg)
        elif checkpoint is not None:
            _load_checkpoint_to_model(model, checkpoint)
        dataset_meta = dict(getattr(model, 'dataset_meta', None) or {})
        if dataset_meta.get('classes') is None or dataset_meta.get('palette') is None:
            test_dataset = copy.deepcopy(cfg.test_dataloader.dataset)
            test_dataset['lazy_init'] = True
            metainfo = DATASETS.build(test_dataset).metainfo
            if dataset_meta.get('classes') is None:
                dataset_meta['classes'] = metainfo['classes']
            if dataset_meta.get('palette') is None:
                dataset_meta['palette'] = metainfo['palette']
        model.dataset_meta = dataset_meta

    def _init_pipeline(self, cfg) -> Compose:
        """The config's test pipeline, annotations dropped, both loaders replaced by
        :class:`RGBDInferencerLoader`."""
        pipeline_cfg = [t for t in copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
                        if t['type'] not in ('LoadAnnotations', 'LoadDepthAnnotation')]
        img_idx = self._get_transform_idx(pipeline_cfg, 'LoadImageFromFile')
        depth_idx = self._get_transform_idx(pipeline_cfg, 'LoadDepthFromFile')
        if img_idx == -1 or depth_idx == -1:
            raise ValueError('RGBDSegInferencer: LoadImageFromFile and LoadDepthFromFile must be '
                             f'in the test pipeline, got {[t["type"] for t in pipeline_cfg]}')
        loader = RGBDInferencerLoader(**{k: v for k, v in pipeline_cfg[depth_idx].items()
                                         if k == 'depth_scale'})
        first, last = sorted((img_idx, depth_idx))
        pipeline_cfg.pop(last)
        pipeline_cfg[first] = loader
        return Compose(pipeline_cfg)

    def _init_visualizer(self, cfg):
        """The config's visualizer, mmseg's stock one replaced by the RGB-D subclass."""
        if 'visualizer' in cfg and str(cfg.visualizer.get('type', '')).split('.')[-1] == \
                'SegLocalVisualizer':
            cfg.visualizer.type = 'RGBDSegLocalVisualizer'
        return super()._init_visualizer(cfg)

    def _inputs_to_list(self, inputs) -> list:
        """Frames as a list of ``dict(img=..., depth=...)``.

        Raises:
            ValueError: If an input is not such a dict.
        """
        inputs = [inputs] if isinstance(inputs, dict) else list(inputs)
        for item in inputs:
            if not isinstance(item, dict) or 'img' not in item or 'depth' not in item:
                raise ValueError('RGBDSegInferencer takes dict(img=rgb, depth=depth) or a list '
                                 f'of them, got {type(item).__name__}')
        return inputs

    def visualize(self, inputs: list, preds: list, return_vis: bool = False,
                  show: bool = False, wait_time: int = 0, img_out_dir: str = '',
                  opacity: float = 0.8,
                  with_labels: Optional[bool] = True) -> Optional[List[np.ndarray]]:
        """Draw each frame (see the module docstring); arguments as mmseg's ``visualize``.

        Returns:
            list[np.ndarray] | None: RGB pictures with ``return_vis``.
        """
        if not show and img_out_dir == '' and not return_vis:
            return None
        if self.visualizer is None:
            raise ValueError('Visualization needs the "visualizer" term defined in the config')
        self.visualizer.set_dataset_meta(**self.model.dataset_meta)
        self.visualizer.alpha = opacity
        loader = self.pipeline.transforms[0]
        results = []
        for frame, pred in zip(inputs, preds):
            loaded = loader(frame)
            if isinstance(frame['img'], str):
                name = osp.basename(frame['img'])
            else:
                name = f'{str(self.num_visualized_imgs).zfill(8)}_vis.png'
            out_file = osp.join(img_out_dir, name) if img_out_dir else None
            image = dict(img=np.ascontiguousarray(loaded['img'][..., ::-1]),
                         depth=loaded['img_depth'])
            drawn = self.visualizer.draw_rgbd(image, pred, draw_gt=False,
                                              with_labels=with_labels,
                                              draw_streams=self.return_streams)
            self.visualizer.set_image(drawn)
            if show:
                self.visualizer.show(drawn, win_name=name, wait_time=wait_time)
            if out_file is not None:
                mmcv.imwrite(drawn[..., ::-1], out_file)
            if return_vis:
                results.append(drawn)
            self.num_visualized_imgs += 1
        return results if return_vis else None

    def postprocess(self, preds, visualization, return_datasample: bool = False,
                    pred_out_dir: str = '') -> dict:
        """mmseg's output, with each stream's class map added under ``return_streams``."""
        results = super().postprocess(preds, visualization, return_datasample, pred_out_dir)
        if return_datasample or not self.return_streams:
            return results
        maps = []
        for pred in preds:
            entry = dict(sem_seg=pred.pred_sem_seg.numpy().data[0])
            for key in STREAM_KEYS:
                if key in pred:
                    entry[key[len('pred_'):]] = pred.get(key).numpy().data[0]
            maps.append(entry)
        results['predictions'] = maps[0] if len(maps) == 1 else maps
        return results
