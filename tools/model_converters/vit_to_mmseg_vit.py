"""Initialise DAMF's ViT-B/16 encoder (mmseg ``VisionTransformer``) from timm / DeiT weights.

Source: an ImageNet ViT-B/16 state dict in timm's names (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``,
``head``): timm's ``vit_base_patch16_224`` checkpoints (original, AugReg ``.augreg_in21k_ft_in1k``
as ``pytorch_model.bin``), or DeiT's ``deit_base_patch16_224`` (``{'model': ...}``). The names are
mapped by mmseg's own ``tools/model_converters/vit2mmseg.py`` (``convert_vit``, called, not
copied). The position embedding is resized to the config's grid (``img_size / patch_size``) with
mmseg's ``VisionTransformer.resize_pos_embed`` (the config's ``interpolate_mode``), which is what
mmseg does at load time anyway, so that every written tensor has the target's shape. The
classifier (``head.*``) is reported as unmapped; so is the patch-embedding bias
(``patch_embed.proj.bias``) when the config's ViT has none (mmseg's default ``patch_bias=False``,
which the DAMF configs keep: set ``patch_bias=True`` to use it), with a note.

DST holds the backbone's own keys, the file the DAMF configs name in
``model.backbone.init_cfg`` (``pretrain/vit-b16_in21k-in1k_mmseg.pth``). ``.npz`` (JAX) and
``.safetensors`` files are not read: take timm's ``pytorch_model.bin`` of the same model.

Usage::

    python tools/model_converters/vit_to_mmseg_vit.py \\
        vit_base_patch16_224.augreg_in21k_ft_in1k.bin pretrain/vit-b16_in21k-in1k_mmseg.pth \\
        [--config projects/DAMF/configs/damf-stage0_vit-b16-detr_8xb2-50e_llvip.py]
"""
import argparse
import math
import os.path as osp
from typing import Optional, Sequence

from mmfusion.utils.checkpoint_conversion import (ConversionError, ConversionReport, Mapping,
                                                  add_common_arguments, build_target,
                                                  finish_conversion, load_source, run_cli)
from mmfusion.utils.mit_state_dict import load_mmseg_converter

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'projects', 'DAMF', 'configs',
                          'damf-stage0_vit-b16-detr_8xb2-50e_llvip.py')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert timm / DeiT ViT-B/16 weights into the mmseg VisionTransformer '
        'backbone checkpoint of the DAMF configs, through mmseg\'s vit2mmseg; the position '
        'embedding is resized to the config\'s patch grid. .npz/.safetensors are not read.',
        epilog='Exit status 2: SRC unreadable or not matching the config\'s ViT.')
    add_common_arguments(parser, DEFAULT_CONFIG, 'timm/DeiT ViT state dict (.pth/.bin)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> ConversionReport:
    args = parse_args(argv)
    report = ConversionReport()
    state = load_source(args.src, notes=report.notes, allow_pickle=args.allow_pickle)
    if 'pos_embed' not in state or not any(k.startswith('blocks.') for k in state):
        raise ConversionError(args.src, 'no pos_embed / blocks.* tensors: not a timm-style ViT')
    vit = build_target(args.config, part='backbone', cfg_options=args.cfg_options)
    target = vit.state_dict()
    convert_vit = load_mmseg_converter('vit2mmseg', 'convert_vit')
    mappings = []
    for name, value in state.items():
        for new_name, new_value in convert_vit({name: value}).items():
            if new_name == 'pos_embed' and new_value.shape != target['pos_embed'].shape:
                side = math.isqrt(new_value.shape[1] - 1)
                if side * side != new_value.shape[1] - 1:
                    raise ConversionError(args.src, f'pos_embed {list(new_value.shape)} is not '
                                          'a square patch grid plus the CLS token')
                grid = (vit.img_size[0] // vit.patch_size, vit.img_size[1] // vit.patch_size)
                new_value = vit.resize_pos_embed(new_value, grid, (side, side),
                                                 vit.interpolate_mode)
                report.notes.append(f'pos_embed resized from a {side}x{side} to a '
                                    f'{grid[0]}x{grid[1]} grid ({vit.interpolate_mode})')
            if new_name == 'patch_embed.projection.bias' and new_name not in target:
                report.notes.append(
                    'the config\'s ViT has no patch-embedding bias (mmseg\'s default '
                    'patch_bias=False): patch_embed.proj.bias is not written; set '
                    'model.backbone.patch_bias=True to keep it')
                continue
            mappings.append(Mapping(name, new_name, new_value))
    return finish_conversion(
        report, state, mappings, target, args.src, args.dst,
        meta=dict(converter=osp.basename(__file__), config=osp.abspath(args.config)))


if __name__ == '__main__':
    run_cli(main)
