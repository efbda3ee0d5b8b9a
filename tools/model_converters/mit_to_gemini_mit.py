"""Initialise ``GeminiMixVisionTransformer`` from SegFormer's ImageNet MiT-B0..B5 weights.

Source: NVIDIA's ``mit_b0.pth`` .. ``mit_b5.pth`` (github.com/NVlabs/SegFormer, the files the
official GeminiFusion code loads from ``pretrained/``): a bare state dict with NVIDIA's names
(``patch_embed<i>``, ``block<i>``, ``norm<i>``, ``head``). The MiT names are mapped by mmseg's own
``tools/model_converters/mit2mmseg.py`` (``convert_mit``, called, not copied); every LayerNorm,
which the two-modality backbone has once per modality, is written to both modalities' norms
(``<norm>.0`` and ``<norm>.1``), as the official ``expand_state_dict`` does. The classifier
(``head.*``) is reported as unmapped; the GeminiFusion blocks are not in the source and keep
their initialisation.

DST holds the backbone's own keys: ``model.backbone.init_cfg=dict(type='Pretrained',
checkpoint=DST)``. (An mmseg-format MiT file, e.g. OpenMMLab's ``mit_b3_20220624-13b1141c.pth``,
also loads directly: ``PerModalityNorm`` expands single norms at load time.)

Usage::

    python tools/model_converters/mit_to_gemini_mit.py mit_b3.pth \\
        checkpoints/mit_b3_gemini.pth \\
        [--config projects/GeminiFusion/configs/geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py]

A MiT of another size than the config's is refused (exit status 2, first mismatching tensor).
"""
import argparse
import os.path as osp
from typing import Optional, Sequence

from mmfusion.utils.checkpoint_conversion import (ConversionError, ConversionReport,
                                                  add_common_arguments, build_target_state,
                                                  finish_conversion, load_source, run_cli)
from mmfusion.utils.mit_state_dict import mit_mappings

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'projects', 'GeminiFusion', 'configs',
                          'geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert SegFormer ImageNet MiT weights (NVIDIA mit_b*.pth) into a '
        'GeminiMixVisionTransformer backbone checkpoint through mmseg\'s mit2mmseg, every norm '
        'copied to both modalities. Use DST as model.backbone.init_cfg checkpoint.',
        epilog='Exit status 2: SRC unreadable or a MiT of another size than the config\'s.')
    add_common_arguments(parser, DEFAULT_CONFIG, 'NVIDIA MiT weights, e.g. mit_b3.pth')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> ConversionReport:
    args = parse_args(argv)
    report = ConversionReport()
    state = load_source(args.src, notes=report.notes, allow_pickle=args.allow_pickle)
    if not any(k.startswith('block1.') for k in state):
        raise ConversionError(args.src, 'no block1.* tensors: not an NVIDIA-format MiT '
                              '(an mmseg-format MiT needs no conversion)')
    target = build_target_state(args.config, part='backbone', cfg_options=args.cfg_options,
                                keep_prefix=False)
    report.notes.append('single-modality norms written to both modalities; the fusion '
                        f'blocks ({sum(".attn.fusion." in k for k in target)} tensors) keep '
                        'their initialisation')
    return finish_conversion(
        report, state, mit_mappings(state, expand_norms=target), target, args.src, args.dst,
        meta=dict(converter=osp.basename(__file__), config=osp.abspath(args.config)),
        ignore_missing=lambda name: '.attn.fusion.' in name)


if __name__ == '__main__':
    run_cli(main)
