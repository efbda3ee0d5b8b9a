"""Hand a finished picture to a visualizer's outputs, host-neutral (mmengine ``Visualizer``).

The ``add_datasample`` tail that mmdet's ``DetLocalVisualizer`` and mmseg's
``SegLocalVisualizer`` both end with, shared by mmfusion's multimodal visualizers.
"""
from typing import Optional

import mmcv
import numpy as np
from mmengine.visualization import Visualizer


def publish_drawing(visualizer: Visualizer, name: str, drawn: np.ndarray, show: bool,
                    wait_time: float, out_file: Optional[str], step: int) -> None:
    """Set ``drawn`` (H, W, 3) RGB uint8 as the visualizer's image, show it if asked, and write
    it to ``out_file`` when given, otherwise to the visualizer's backends (``add_image``)."""
    visualizer.set_image(drawn)
    if show:
        visualizer.show(drawn, win_name=name, wait_time=wait_time)
    if out_file is not None:
        mmcv.imwrite(drawn[..., ::-1], out_file)
    else:
        visualizer.add_image(name, drawn, step)
