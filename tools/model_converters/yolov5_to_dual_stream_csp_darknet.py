"""Initialise both streams of ``DualStreamCSPDarknet`` from a YOLOv5 (v5.x) checkpoint.

Source: ultralytics/yolov5 release v5.0 ``yolov5l.pt`` (``models/yolov5l.yaml``: Focus stem,
SPP; the layout of github.com/EhanDong/Fusion-Mamba's code base), as a state dict: layers
``model.0`` .. ``model.9`` are the backbone (Focus, Conv, C3, Conv, C3, Conv, C3, Conv, SPP, C3),
``model.10`` .. ``model.24`` the PAN head and Detect (reported as unmapped). The backbone maps
tensor for tensor onto mmdet's ``CSPDarknet`` (:mod:`mmfusion.utils.yolov5_state_dict`), and the
same weights are written to both streams (``rgb_stream.*`` and ``ir_stream.*``); the fusion
blocks are not in the source and keep their initialisation (listed as missing).

DST holds the backbone's own keys: use it as
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=DST)``.

Official recipe note: the official Fusion-Mamba ``train.py`` trains from scratch by default
(``--weights ''``); with ``--weights yolov5l.pt`` its ``intersect_dicts`` (same name and shape)
would fill only layers 0-4 of the first stream, since the two-stream yaml renumbers the rest.
Initialising both complete streams, as here, is this converter's choice.

YOLOv5 v6.0+ checkpoints (6x6 stem convolution, C3 before SPPF) are a different architecture
and are refused. ``yolov5l.pt`` files as released are pickled whole models; make a state dict
once with the yolov5 repository (v5.0) on ``PYTHONPATH``::

    python -c "import torch; m = torch.load('yolov5l.pt', weights_only=False)['model']; \
torch.save(m.float().state_dict(), 'yolov5l_state_dict.pth')"

Usage::

    python tools/model_converters/yolov5_to_dual_stream_csp_darknet.py \\
        yolov5l_state_dict.pth checkpoints/yolov5l_dual_stream_csp_darknet.pth \\
        [--config projects/FusionMamba/configs/fusion-mamba_yolox-l_1xb8-200e_llvip.py]
"""
import argparse
import os.path as osp
from typing import Dict, List, Optional, Sequence

from torch import Tensor

from mmfusion.utils.checkpoint_conversion import (PICKLED_MODEL_HINT, ConversionError,
                                                  ConversionReport, Mapping, add_common_arguments,
                                                  build_target_state, finish_conversion,
                                                  load_source, run_cli)
from mmfusion.utils.yolov5_state_dict import is_yolov5_v6_layout, map_yolov5_stream

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'projects', 'FusionMamba', 'configs',
                          'fusion-mamba_yolox-l_1xb8-200e_llvip.py')
BACKBONE_INDICES = tuple(range(10))  # yolov5l.yaml backbone layers
STREAMS = ('rgb_stream', 'ir_stream')


def convert(state: Dict[str, Tensor]) -> List[Mapping]:
    """YOLOv5 v5.x state dict -> both streams' CSPDarknet names (same tensors twice)."""
    return [Mapping(*m) for stream in STREAMS
            for m in map_yolov5_stream(state, BACKBONE_INDICES, f'{stream}.')]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Initialise both CSPDarknet streams of DualStreamCSPDarknet from a YOLOv5 '
        'v5.x (Focus, SPP) state dict such as yolov5l.pt\'s. DST is a backbone checkpoint for '
        'model.backbone.init_cfg=dict(type="Pretrained", checkpoint=DST). '
        + PICKLED_MODEL_HINT,
        epilog='Exit status 2: SRC unreadable, a v6+ layout, or not matching the config.')
    add_common_arguments(parser, DEFAULT_CONFIG, 'YOLOv5 state dict (keys model.N.*)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> ConversionReport:
    args = parse_args(argv)
    report = ConversionReport()
    state = load_source(args.src, notes=report.notes, allow_pickle=args.allow_pickle)
    if is_yolov5_v6_layout(state):
        raise ConversionError(args.src, 'YOLOv5 v6.0+ layout (6x6 stem, C3 before SPPF) is not '
                              'CSPDarknet; use the v5.0 release weights (Focus, SPP)')
    target = build_target_state(args.config, part='backbone', cfg_options=args.cfg_options,
                                keep_prefix=False)
    report.notes.append('the same YOLOv5 weights were written to both streams; the fusion '
                        f'blocks ({sum(k.startswith("fusions.") for k in target)} tensors) '
                        'keep their initialisation')
    return finish_conversion(
        report, state, convert(state), target, args.src, args.dst,
        meta=dict(converter=osp.basename(__file__), config=osp.abspath(args.config)),
        ignore_missing=lambda name: name.startswith('fusions.'))


if __name__ == '__main__':
    run_cli(main)
