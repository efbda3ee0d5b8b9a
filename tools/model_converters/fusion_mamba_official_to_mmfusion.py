"""Convert an official Fusion-Mamba checkpoint into an mmfusion detector checkpoint.

Source: github.com/EhanDong/Fusion-Mamba, the two-stream ``Model`` of ``models/yolo_test.py``
built from ``models/transformer/yolov5l-fusionmamba.yaml`` (the model its ``train.py`` trains).
Layer indices of that yaml (``model.N.``)::

    RGB stream   0 Focus, 1 Conv, 2 C3, 3 Conv, 4 C3 | 14 Conv, 15 C3 | 22 Conv, 23 SPP, 24 C3
    IR stream    5 Focus, 6 Conv, 7 C3, 8 Conv, 9 C3 | 16 Conv, 17 C3 | 25 Conv, 26 SPP, 27 C3
    FMB at P3    10 chnnel_swapping_Vmamba (SSCS), 11 CrossLayer (DSSF)
    FMB at P4    18, 19;   FMB at P5   28, 29
    no weights   12, 13, 20, 21, 30, 31 (Add2), 32-34 (Add)
    YOLOv5 head  35-48 (PAN neck), 49 Detect

Target: ``backbone.`` of the mmfusion Fusion-Mamba detector (``DualStreamCSPDarknet``): both
CSPDarknet streams (``rgb_stream``, ``ir_stream``) and the three FMBs (``fusions.2/3/4``) map
tensor for tensor; the YOLOv5 PAN neck and anchor Detect head (35-49) have no counterpart in
mmdet's YOLOX neck and head and are reported as unmapped (name and shape), not written.

Name mapping of the FMB (official -> mmfusion, under ``backbone.fusions.<level>.``)::

    SSCS  blocks1.K.* / blocks2.K.*                    sscs.blocks_rgb.K.* / sscs.blocks_ir.K.*
    DSSF  blocks.K.ln_1 / ln_2                         dssf.blocks.K.norm_rgb / norm_ir
          blocks.K.self_attention.in_proj1 / 2         dssf.blocks.K.ss2d_rgb / ss2d_ir.in_proj
          ... conv2d1 / 2, out_norm1 / 2, out_proj1 / 2  ... conv2d, out_norm, out_proj
          ... x_proj_weight, dt_projs_weight,           dssf.blocks.K.ss2d_rgb.<same name>
              dt_projs_bias, A_logs, Ds                 (one scan parameter set, shared)

Official checkpoints were trained with the official DSSF (blocks not chained, infrared gating
from the mixed RGB result): evaluate or fine-tune DST with a config that sets
``official_dssf=True`` on the fusion blocks, e.g.
``projects/FusionMamba/configs/fusion-mamba-official-dssf_yolox-l_1xb8-200e_llvip.py``, whose
streams and FMBs then compute what the official model computed.

Source files. The official ``train.py`` saves ``{'model': <pickled Model>.half(), 'ema': ...}``,
a pickled whole model that cannot be read without the official code. This converter reads only
weights-only files: a bare state dict, ``{'model': state_dict}`` or ``{'state_dict': ...}``.
Turn an official training checkpoint into a state dict once, with the official repository on
``PYTHONPATH`` (the EMA weights are what the official ``test.py`` evaluates)::

    cd Fusion-Mamba && python -c "import torch; c = torch.load('best.pt', weights_only=False); \
m = c.get('ema') or c['model']; torch.save(m.float().state_dict(), 'best_state_dict.pth')"

Usage::

    python tools/model_converters/fusion_mamba_official_to_mmfusion.py \\
        best_state_dict.pth checkpoints/fusion-mamba_llvip_official.pth \\
        [--config projects/FusionMamba/configs/<fusion-mamba-official-dssf config>]

Exit status 2 with a one-line message naming the file if SRC cannot be read or does not match
the config's architecture (first mismatching tensor, both shapes).
"""
import argparse
import os.path as osp
import re
from typing import Dict, Iterator, List, Optional, Sequence

from torch import Tensor

from mmfusion.utils.checkpoint_conversion import (PICKLED_MODEL_HINT, ConversionReport, Mapping,
                                                  add_common_arguments, build_target_state,
                                                  finish_conversion, load_source, run_cli)
from mmfusion.utils.yolov5_state_dict import map_yolov5_stream

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'projects', 'FusionMamba', 'configs',
                          'fusion-mamba-official-dssf_yolox-l_1xb8-200e_llvip.py')

STREAM_INDICES = {
    'rgb_stream': (0, 1, 2, 3, 4, 14, 15, 22, 23, 24),
    'ir_stream': (5, 6, 7, 8, 9, 16, 17, 25, 26, 27),
}
# output level of DualStreamCSPDarknet -> (SSCS index, CrossLayer index)
FMB_INDICES = {2: (10, 11), 3: (18, 19), 4: (28, 29)}

_SSCS_RULES = ((r'^blocks1\.', 'sscs.blocks_rgb.'), (r'^blocks2\.', 'sscs.blocks_ir.'))
_DSSF_RULES = (
    (r'^blocks\.(\d+)\.ln_1\.', r'dssf.blocks.\1.norm_rgb.'),
    (r'^blocks\.(\d+)\.ln_2\.', r'dssf.blocks.\1.norm_ir.'),
    (r'^blocks\.(\d+)\.self_attention\.(in_proj|conv2d|out_norm|out_proj)1\.',
     r'dssf.blocks.\1.ss2d_rgb.\2.'),
    (r'^blocks\.(\d+)\.self_attention\.(in_proj|conv2d|out_norm|out_proj)2\.',
     r'dssf.blocks.\1.ss2d_ir.\2.'),
    (r'^blocks\.(\d+)\.self_attention\.(x_proj_weight|dt_projs_weight|dt_projs_bias|A_logs|Ds)$',
     r'dssf.blocks.\1.ss2d_rgb.\2'),
)


def _map_by_rules(state: Dict[str, Tensor], index: int, rules, dst_prefix: str
                  ) -> Iterator[Mapping]:
    src_prefix = f'model.{index}.'
    for name, value in state.items():
        if not name.startswith(src_prefix):
            continue
        suffix = name[len(src_prefix):]
        for pattern, repl in rules:
            if re.match(pattern, suffix):
                yield Mapping(name, dst_prefix + re.sub(pattern, repl, suffix), value)
                break


def convert(state: Dict[str, Tensor], prefix: str = 'backbone.') -> List[Mapping]:
    """Official Fusion-Mamba state dict -> mappings onto ``DualStreamCSPDarknet`` names.

    Args:
        state (dict[str, Tensor]): Official state dict (keys ``model.N.*``).
        prefix (str): Prefix of the target names (the backbone's in the detector).

    Returns:
        list[Mapping]: Every tensor of the two streams and the three FMBs.
    """
    mappings = []
    for stream, indices in STREAM_INDICES.items():
        stream_maps = map_yolov5_stream(state, indices, f'{prefix}{stream}.')
        mappings += [Mapping(*m) for m in stream_maps]
    for level, (sscs, dssf) in FMB_INDICES.items():
        fusion = f'{prefix}fusions.{level}.'
        mappings += list(_map_by_rules(state, sscs, _SSCS_RULES, fusion))
        mappings += list(_map_by_rules(state, dssf, _DSSF_RULES, fusion))
    return mappings


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official Fusion-Mamba (EhanDong/Fusion-Mamba, '
        'yolov5l-fusionmamba.yaml) state dict into an mmfusion detector checkpoint: both '
        'CSPDarknet streams and the three FMBs; the YOLOv5 PAN neck and Detect head have no '
        'counterpart (reported, not written). Use DST with a config that sets '
        'official_dssf=True. ' + PICKLED_MODEL_HINT.replace('%', '%%'),
        epilog='Exit status 2: SRC unreadable or not matching the config architecture.')
    add_common_arguments(parser, DEFAULT_CONFIG,
                         'official state dict (bare, or under "model"/"state_dict")')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> ConversionReport:
    args = parse_args(argv)
    report = ConversionReport()
    state = load_source(args.src, notes=report.notes, allow_pickle=args.allow_pickle)
    target = build_target_state(args.config, part='backbone', cfg_options=args.cfg_options)
    return finish_conversion(
        report, state, convert(state), target, args.src, args.dst,
        meta=dict(converter=osp.basename(__file__), config=osp.abspath(args.config),
                  note='official Fusion-Mamba streams and FMBs; use a config with '
                  'official_dssf=True'))


if __name__ == '__main__':
    run_cli(main)
