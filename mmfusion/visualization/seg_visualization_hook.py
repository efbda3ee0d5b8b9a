"""mmseg's ``SegVisualizationHook`` with the ``test_out_dir`` of mmdet's and mmdet3d's hooks.

mmseg 1.2's hook sends every test picture to the visualizer's backends
(``<save_dir>/vis_data/vis_image/<name>_<step>.png``), and its ``tools/test.py --show-dir``
moves the whole visualizer ``save_dir``. mmdet's and mmdet3d's hooks instead write each test
picture to ``<work_dir>/<timestamp>/<test_out_dir>/<image file name>``; this subclass does the
same for mmseg, so ``tools/test.py --show-dir`` puts pictures in the same place for every host.
Validation, ``show`` and the backends are unchanged.
"""
import os.path as osp
from typing import Optional, Sequence

import mmcv
from mmengine.fileio import get
from mmengine.utils import mkdir_or_exist
from mmseg.engine.hooks import SegVisualizationHook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class SegOutDirVisualizationHook(SegVisualizationHook):
    """``SegVisualizationHook`` that saves test pictures under ``test_out_dir``.

    Args:
        test_out_dir (str, optional): Folder for the test pictures, relative to
            ``<work_dir>/<timestamp>`` (an absolute path is kept). None: the stock behaviour.
        **kwargs: Those of mmseg's ``SegVisualizationHook``.
    """

    def __init__(self, test_out_dir: Optional[str] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.test_out_dir = test_out_dir

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence) -> None:
        """Draw every test sample into ``test_out_dir`` (or as the stock hook without it)."""
        if self.test_out_dir is None:
            return super().after_test_iter(runner, batch_idx, data_batch, outputs)
        if not self.draw:
            return
        out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
        mkdir_or_exist(out_dir)
        for output in outputs:
            img = mmcv.imfrombytes(get(output.img_path, backend_args=self.backend_args),
                                   channel_order='rgb')
            name = osp.basename(output.img_path)
            self._visualizer.add_datasample(
                f'test_{name}', img, data_sample=output, show=self.show,
                wait_time=self.wait_time, out_file=osp.join(out_dir, name), step=runner.iter)
