"""Convert the official GeminiFusion MVX-Net KITTI checkpoint into an mmfusion one.

Source: github.com/JiaDingCN/GeminiFusion, branch ``3d_object_detection_kitti``, the released
``geminifusion_mvxnet.pth`` of config ``geminifusion_mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-
3d-3class``: an mmengine checkpoint (``{'state_dict': ..., 'meta': ..., 'message_hub': ...,
...}``) of mmdet3d's ``DynamicMVXFasterRCNN`` whose voxel encoder (``DynamicVFE_modified``) has
a ``Gemini_PointFusion`` after each of its two VFE layers (``fusion_layer.0``: 64 wide,
``fusion_layer.1``: 128 wide); 34.8 M parameters.

Target: ``projects/GeminiFusion/configs/mvxnet_gemini-fusion-2layer_fpn_dv_second_secfpn_8xb2-80e_
kitti-3d-3class.py`` (``GeminiDynamicVFE`` with two ``GeminiPointFusion`` layers; the rest is the
stock mmdet3d MVX-Net, whose names the official code shares). Mapping: every tensor keeps its
name, except under ``pts_voxel_encoder.fusion_layer.<k>.`` ->
``pts_voxel_encoder.fusion_layers.<k>.``::

    lateral_convs, img_transform, pts_transform, alpha   same names
    cross_attn_0_to_1 / cross_attn_1_to_0                gemini_fusion.attn_a / attn_b
    relation_judger.0.fc1 / fc2                          gemini_fusion.relation_discriminator.0/2
    k_noise, v_noise                                     gemini_fusion.k_noise, v_noise

Sparse-convolution kernels are written in the layout of the target model (spconv 2's
(out, D, H, W, in) when spconv is installed); kernels saved by mmcv's sparse convolutions
(D, H, W, in, out) are permuted. The released file is an mmengine training checkpoint: its
message hub holds mmengine and numpy objects, so it cannot be read weights-only; pass
``--allow-pickle`` for this file you trust (or save
``torch.load(SRC, weights_only=False)['state_dict']`` once and convert that).

Usage::

    python tools/model_converters/geminifusion_kitti_official_to_mmfusion.py \\
        geminifusion_mvxnet.pth checkpoints/geminifusion_mvxnet_kitti_official.pth --allow-pickle
"""
import argparse
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

from torch import Tensor

from mmfusion.utils.checkpoint_conversion import (ConversionError, ConversionReport, Mapping,
                                                  add_common_arguments, build_target_state,
                                                  finish_conversion, load_source, run_cli)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'projects', 'GeminiFusion', 'configs',
                          'mvxnet_gemini-fusion-2layer_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-'
                          '3class.py')
FUSION_PREFIX = re.compile(r'^pts_voxel_encoder\.fusion_layer\.(\d+)\.')
FUSION_RULES = (
    (r'^cross_attn_0_to_1\.', 'gemini_fusion.attn_a.'),
    (r'^cross_attn_1_to_0\.', 'gemini_fusion.attn_b.'),
    (r'^relation_judger\.0\.fc1\.', 'gemini_fusion.relation_discriminator.0.'),
    (r'^relation_judger\.0\.fc2\.', 'gemini_fusion.relation_discriminator.2.'),
    (r'^(k_noise|v_noise)\.', r'gemini_fusion.\1.'),
)


def convert(state: Dict[str, Tensor]) -> List[Mapping]:
    """Official MVX-Net + GeminiFusion state dict -> mmfusion names (see the module doc)."""
    mappings = []
    for name, value in state.items():
        match = FUSION_PREFIX.match(name)
        if match is None:
            mappings.append(Mapping(name, name, value))
            continue
        suffix = name[match.end():]
        for pattern, repl in FUSION_RULES:
            suffix = re.sub(pattern, repl, suffix)
        mappings.append(Mapping(
            name, f'pts_voxel_encoder.fusion_layers.{match[1]}.{suffix}', value))
    return mappings


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert the official GeminiFusion MVX-Net KITTI checkpoint (branch '
        '3d_object_detection_kitti, two fusion layers) into an mmfusion checkpoint of the '
        'two-layer config (GeminiDynamicVFE). The released file is an mmengine training '
        'checkpoint: pass --allow-pickle for it.',
        epilog='Exit status 2: SRC unreadable or not matching the config architecture.')
    add_common_arguments(parser, DEFAULT_CONFIG, 'official checkpoint (geminifusion_mvxnet.pth)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> ConversionReport:
    args = parse_args(argv)
    report = ConversionReport()
    state = load_source(args.src, notes=report.notes, allow_pickle=args.allow_pickle)
    if not any(FUSION_PREFIX.match(k) for k in state):
        raise ConversionError(args.src, 'no pts_voxel_encoder.fusion_layer.<k>.* tensors: not '
                              'the official GeminiFusion MVX-Net checkpoint')
    target = build_target_state(args.config, cfg_options=args.cfg_options)
    mappings = convert(state)
    permuted = 0
    for i, (source, name, value) in enumerate(mappings):
        if value.dim() == 5 and name in target and value.shape != target[name].shape \
                and value.permute(4, 0, 1, 2, 3).shape == target[name].shape:
            mappings[i] = Mapping(source, name, value.permute(4, 0, 1, 2, 3))
            permuted += 1
    if permuted:
        report.notes.append(f'{permuted} sparse-conv kernels moved from mmcv\'s (D, H, W, in, '
                            'out) to spconv 2\'s (out, D, H, W, in) layout')
    return finish_conversion(
        report, state, mappings, target, args.src, args.dst,
        meta=dict(converter=osp.basename(__file__), config=osp.abspath(args.config)))


if __name__ == '__main__':
    run_cli(main)
