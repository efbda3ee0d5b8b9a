"""``tools/test.py --show/--show-dir`` for every host library, and a guard around the drawing.

Each host's visualization hook takes its own keys, so the stock ``tools/test.py`` of one library
breaks the configs of another (mmdet3d's ``vis_task`` makes mmdet's and mmseg's hooks fail).
:func:`configure_visualization` sets, by the config's ``default_scope``:

===========  ==========================  ====================================================
host         hook                        keys set
===========  ==========================  ====================================================
mmdet3d      ``Det3DVisualizationHook``  draw, show, wait_time, test_out_dir, score_thr,
                                         vis_task (from the test pipeline unless given),
                                         draw_gt
mmdet        ``DetVisualizationHook``    draw, show, wait_time, test_out_dir, score_thr
mmseg        ``SegVisualizationHook``    draw, show, wait_time; with a show dir the hook
                                         becomes mmfusion's ``SegOutDirVisualizationHook``
                                         (the stock one has no ``test_out_dir``)
===========  ==========================  ====================================================

Pictures go to ``<work_dir>/<timestamp>/<show_dir>`` as with the stock mmdet/mmdet3d tools
(a relative ``show_dir`` is kept relative, the hooks join it). The visualizer is switched to
mmfusion's two-modality subclass where the test pipeline loads two modalities and the config
names the stock visualizer: ``PairedDetLocalVisualizer`` (``LoadPairedImageFromFile``),
``RGBDSegLocalVisualizer`` (``LoadDepthFromFile``), ``CameraViewDet3DVisualizer`` (LiDAR
tasks; draws without open3d). Everything here works on config dicts and type names, so this
module imports no host library.

The hook is wrapped in :class:`GuardedVisualizationHook`: an exception while drawing is logged
with its traceback, drawing stops for the rest of the run, and the test loop goes on, so the
metrics are computed and written as without ``--show-dir``; the failure is reported again at
the end of the test.
"""
import traceback
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

__all__ = ['GuardedVisualizationHook', 'configure_visualization', 'default_vis_task', 'host_of',
           'select_visualizer', 'test_pipeline_types']

HOST_HOOKS = {'mmdet3d': 'Det3DVisualizationHook', 'mmdet': 'DetVisualizationHook',
              'mmseg': 'SegVisualizationHook'}
ENTRY_POINTS = {'mmdet3d': 'mmfusion.det3d', 'mmdet': 'mmfusion.det', 'mmseg': 'mmfusion.seg'}
# host -> (loader in the test pipeline (None: a LiDAR vis_task), stock visualizer, mmfusion's)
STOCK_TO_MMFUSION_VISUALIZER = {
    'mmdet3d': [(None, 'Det3DLocalVisualizer', 'CameraViewDet3DVisualizer')],
    'mmdet': [('LoadPairedImageFromFile', 'DetLocalVisualizer', 'PairedDetLocalVisualizer')],
    'mmseg': [('LoadDepthFromFile', 'SegLocalVisualizer', 'RGBDSegLocalVisualizer')],
}


@HOOKS.register_module()
class GuardedVisualizationHook(Hook):
    """Run a visualization hook; a drawing error is logged and stops drawing, not the run.

    Args:
        hook (dict): Config of the wrapped hook (built in the runner's default scope).

    Attributes:
        error (str | None): Traceback of the first failure, None while drawing works.
    """
    priority = 'NORMAL'

    def __init__(self, hook: dict) -> None:
        self.hook = HOOKS.build(hook)
        self.priority = getattr(self.hook, 'priority', 'NORMAL')
        self.error = None
        self.num_drawn = 0

    def _guarded(self, stage, runner, *args, **kwargs):
        if self.error is not None:
            return
        try:
            getattr(self.hook, stage)(runner, *args, **kwargs)
            self.num_drawn += 1
        except Exception:  # any drawing failure: keep testing, report it
            self.error = traceback.format_exc()
            print_log(f'visualization failed at {stage} (batch {args[0] if args else "?"}); '
                      'no further pictures are drawn, the test goes on and its metrics are '
                      f'unaffected:\n{self.error}', logger='current', level=40)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._guarded('after_val_iter', runner, batch_idx, data_batch, outputs)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._guarded('after_test_iter', runner, batch_idx, data_batch, outputs)

    def after_test(self, runner) -> None:
        self.hook.after_test(runner)
        if self.error is not None:
            print_log('visualization failed (see the traceback above); the metrics are '
                      'complete, the pictures are not: ' + self.error.strip().splitlines()[-1],
                      logger='current', level=40)

    def get_triggered_stages(self) -> list:
        return self.hook.get_triggered_stages()


def host_of(cfg) -> str:
    """The host library of a config: its ``default_scope`` ('mmdet3d', 'mmdet', 'mmseg').

    Raises:
        ValueError: If the scope is none of those.
    """
    scope = cfg.get('default_scope')
    if scope not in HOST_HOOKS:
        raise ValueError(f'default_scope {scope!r}: visualization is configured for '
                         f'{sorted(HOST_HOOKS)} configs only')
    return scope


def test_pipeline_types(cfg) -> list:
    """Transform type names of the test dataset's pipeline (the dataset possibly wrapped)."""
    dataset = cfg.test_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    return [str(t.get('type', '')).split('.')[-1] for t in dataset.get('pipeline', [])]


def default_vis_task(types) -> str:
    """mmdet3d ``vis_task`` for a test pipeline: points+image, points, or image."""
    points = 'LoadPointsFromFile' in types
    image = any(t in types for t in ('LoadImageFromFile', 'LoadMultiViewImageFromFiles'))
    if points and image:
        return 'multi-modality_det'
    return 'lidar_det' if points else 'mono_det'


def select_visualizer(cfg, types, host: str, vis_task: Optional[str] = None) -> None:
    """Switch a stock visualizer type to mmfusion's subclass for two-modality pipelines, in a
    config that imports mmfusion's entry point of its host (``custom_imports``)."""
    vis = cfg.get('visualizer')
    if vis is None:
        raise ValueError('the config defines no "visualizer"; add e.g. '
                         'visualizer=dict(type=..., vis_backends=[dict(type="LocalVisBackend")])')
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    imports = [imports] if isinstance(imports, str) else list(imports)
    if ENTRY_POINTS[host] not in imports:
        return  # mmfusion's visualizers are registered by its entry point only
    stock = str(vis.get('type', '')).split('.')[-1]
    for loader, stock_type, ours in STOCK_TO_MMFUSION_VISUALIZER[host]:
        needs = loader in types if loader else vis_task in ('lidar_det', 'multi-modality_det')
        if needs and stock == stock_type:
            vis['type'] = ours


def configure_visualization(cfg, show_dir: Optional[str] = None, show: bool = False,
                            wait_time: float = 2., score_thr: Optional[float] = None,
                            task: Optional[str] = None) -> None:
    """Switch the config's visualization hook on for testing (see the module docstring).

    Args:
        cfg (Config): The test config, modified in place.
        show_dir (str, optional): Picture folder, relative to ``<work_dir>/<timestamp>``.
        show (bool): Show each picture in a window. Defaults to False.
        wait_time (float): Seconds a shown picture stays. Defaults to 2.
        score_thr (float, optional): Score threshold of drawn boxes (detection hosts).
        task (str, optional): mmdet3d ``vis_task``; None: from the test pipeline.

    Raises:
        RuntimeError: If the config has no ``default_hooks.visualization``.
        ValueError: For an unknown host, ``score_thr``/``task`` on a host without them, or a
            config without ``visualizer``.
    """
    host = host_of(cfg)
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks:
        raise RuntimeError('tools/test.py --show/--show-dir needs default_hooks.visualization '
                           f'(e.g. dict(type={HOST_HOOKS[host]!r}))')
    hook = hooks['visualization']
    if hook.get('type') == 'GuardedVisualizationHook':
        hook = hook['hook']
    types = test_pipeline_types(cfg)
    hook['draw'] = True
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    vis_task = None
    if host == 'mmdet3d':
        vis_task = task or default_vis_task(types)
        hook['vis_task'] = vis_task
        hook['draw_gt'] = True
    elif task is not None:
        raise ValueError(f'--task is an mmdet3d option; this is an {host} config')
    if score_thr is not None:
        if host == 'mmseg':
            raise ValueError('--score-thr applies to detection; this is an mmseg config')
        hook['score_thr'] = score_thr
    if show_dir:
        if host == 'mmseg' and str(hook.get('type', '')).split('.')[-1] == 'SegVisualizationHook':
            hook['type'] = 'SegOutDirVisualizationHook'
        hook['test_out_dir'] = show_dir
    select_visualizer(cfg, types, host, vis_task)
    hooks['visualization'] = dict(type='GuardedVisualizationHook', hook=hook)
