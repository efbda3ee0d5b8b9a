"""Convert an official GeminiFusion NYUDv2 / SUN RGB-D MiT checkpoint into an mmfusion one.

Source: github.com/JiaDingCN/GeminiFusion, main branch. ``main.py`` saves
``{'segmenter': <DDP state_dict>, 'epoch_start': ..., 'best_val': ...}`` (``Saver.save`` in
``utils/meter.py``), so every key reads ``module.<part>.*`` of ``WeTr`` (``models/segformer.py``):

- ``encoder.*``: the two-modality MiT of ``models/mix_transformer.py``. Shared modules are
  wrapped in ``ModuleParallel`` (``.module.`` in the name), per-modality norms are
  ``LayerNormParallel`` (``ln_0``, ``ln_1``), the fusion lives in each block's ``attn``
  (``cross_attn_0_to_1``, ``cross_attn_1_to_0``, ``relation_judger``, ``k_noise``, ``v_noise``);
- ``decoder.*``: ``SegFormerHead`` (``linear_c1..4.proj`` Linear per level, ``linear_fuse``
  ConvModule with BN, ``linear_pred``);
- ``alpha``: the ensemble weights (never trained officially: ones, i.e. 0.5 / 0.5).

Mapping (target: ``GeminiFusionEncoderDecoder``):

- encoder -> ``backbone.``: ``.module.`` dropped, ``ln_0``/``ln_1`` -> ``0``/``1``
  (:class:`~mmfusion.models.backbones.gemini_mix_vision_transformer.PerModalityNorm`), then
  mmseg's own ``tools/model_converters/mit2mmseg.py`` (``convert_mit``, called, not copied)
  for the MiT names,
  then the fusion names of :mod:`mmfusion.models.fusion.gemini_fusion`
  (``cross_attn_0_to_1`` -> ``attn.fusion.attn_a``, ``cross_attn_1_to_0`` -> ``attn_b``,
  ``relation_judger.0.fc1/fc2`` -> ``relation_discriminator.0/2``, noise embeddings as they are);
- decoder -> ``decode_head.`` when the config's head is
  :class:`~mmfusion.models.decode_heads.segformer_mlp_head.SegformerMLPHead` (the official head:
  ``linear_c<i>.proj`` -> ``linear_c.<i-1>``, ``linear_fuse`` -> ``fusion_conv``, ``linear_pred``
  -> ``conv_seg``); with mmseg's ``SegformerHead`` (BN + ReLU after each level, which no weight
  mapping can undo) the decoder is reported as unmapped and DST holds the backbone only;
- ``alpha`` -> ``ensemble_alpha``.

With the official-head configs
(``geminifusion_mit-b{3,5}-official-head_3xb2-40k_nyudv2-rgbd-480x640.py`` in
``projects/GeminiFusion/configs/``)
DST computes the official model's three outputs (RGB, depth, ensemble logits) on the same input.

Usage::

    python tools/model_converters/geminifusion_official_to_mmfusion.py \\
        mit-b3.pth.tar checkpoints/geminifusion_mit-b3_nyudv2_official.pth \\
        [--config projects/GeminiFusion/configs/<official-head config>]

The released checkpoints are weights-only files (``torch.load(..., weights_only=True)`` reads
them). Exit status 2 with a one-line message naming the file if SRC cannot be read or does not
match the config (e.g. a MiT-B5 checkpoint for a MiT-B3 config: first mismatching tensor, both
shapes).
"""
import argparse
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from mmfusion.utils.checkpoint_conversion import (ConversionError, ConversionReport, Mapping,
                                                  add_common_arguments, build_target_state,
                                                  finish_conversion, load_source, run_cli)
from mmfusion.utils.mit_state_dict import mit_mappings

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'projects', 'GeminiFusion', 'configs',
                          'geminifusion_mit-b3-official-head_3xb2-40k_nyudv2-rgbd-480x640.py')

DECODER_RULES = (
    (r'^decoder\.linear_c([1-4])\.proj\.', lambda m: f'decode_head.linear_c.{int(m[1]) - 1}.'),
    (r'^decoder\.linear_fuse\.', lambda m: 'decode_head.fusion_conv.'),
    (r'^decoder\.linear_pred\.', lambda m: 'decode_head.conv_seg.'),
)


def split_official(state: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], Dict[str, str]]:
    """Encoder tensors with ``encoder.`` and the ``ModuleParallel`` ``.module.`` removed.

    Returns:
        tuple: ({cleaned name: tensor}, {cleaned name: official name}).
    """
    encoder, origin = {}, {}
    for name, value in state.items():
        if name.startswith('encoder.'):
            clean = name[len('encoder.'):].replace('.module.', '.')
            encoder[clean] = value
            origin[clean] = name
    return encoder, origin


def convert(state: Dict[str, Tensor], map_decoder: bool = True) -> List[Mapping]:
    """Official ``WeTr`` state dict (``module.`` stripped) -> mappings onto the segmentor.

    Args:
        state (dict[str, Tensor]): Keys ``encoder.*``, ``decoder.*``, ``alpha``.
        map_decoder (bool): Map the official decoder (target head ``SegformerMLPHead``).
    """
    encoder, origin = split_official(state)
    mappings = mit_mappings(encoder, dst_prefix='backbone.', origin=origin)
    for name, value in state.items():
        if name == 'alpha':
            mappings.append(Mapping(name, 'ensemble_alpha', value))
        elif map_decoder:
            for pattern, repl in DECODER_RULES:
                match = re.match(pattern, name)
                if match:
                    mappings.append(Mapping(name, repl(match) + name[match.end():], value))
                    break
    return mappings


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official GeminiFusion NYUDv2/SUN RGB-D MiT checkpoint '
        '(JiaDingCN/GeminiFusion main: {"segmenter": state_dict}) into an mmfusion '
        'GeminiFusionEncoderDecoder checkpoint. The official decoder maps onto the '
        'official-head configs (SegformerMLPHead); with mmseg\'s SegformerHead only the '
        'backbone and the ensemble weights are written.',
        epilog='Exit status 2: SRC unreadable or not matching the config architecture.')
    add_common_arguments(parser, DEFAULT_CONFIG, 'official checkpoint, e.g. mit-b3.pth.tar')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> ConversionReport:
    args = parse_args(argv)
    report = ConversionReport()
    state = load_source(args.src, notes=report.notes, allow_pickle=args.allow_pickle)
    if not any(k.startswith('encoder.') for k in state):
        raise ConversionError(args.src, 'no encoder.* tensors: not an official GeminiFusion '
                              'segmentation checkpoint')
    target = build_target_state(args.config, cfg_options=args.cfg_options)
    official_head = 'decode_head.linear_c.0.weight' in target
    if not official_head:
        report.notes.append('the config\'s decode head is not SegformerMLPHead: the official '
                            'decoder is not written (use an official-head config)')
    if 'alpha' in state:
        weights = state['alpha'].softmax(0).tolist()
        report.notes.append('ensemble weights softmax(alpha) = '
                            + ' / '.join(f'{w:.4f}' for w in weights))
    return finish_conversion(
        report, state, convert(state, map_decoder=official_head), target, args.src, args.dst,
        meta=dict(converter=osp.basename(__file__), config=osp.abspath(args.config)))


if __name__ == '__main__':
    run_cli(main)
