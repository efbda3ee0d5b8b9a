"""MiT (SegFormer) tensor names in mmseg's ``MixVisionTransformer`` and in mmfusion's
two-modality ``GeminiMixVisionTransformer``: the shared mapping of the MiT and the official
GeminiFusion checkpoint converters (``tools/model_converters/``).

The MiT names themselves are mapped by mmseg's own ``tools/model_converters/mit2mmseg.py``
(``convert_mit``: ``patch_embed<i>`` -> ``layers.<i-1>.0``, ``block<i>`` -> ``layers.<i-1>.1``,
query and key/value concatenated into ``attn.attn.in_proj_*``, Mix-FFN linears as 1x1 convs,
``norm<i>`` -> ``layers.<i-1>.2``), called through :func:`load_mmseg_converter`, never copied.
This module adds the two things mmseg's converter does not know:

- per-modality norms: a GeminiFusion checkpoint names them ``<norm>.ln_0`` / ``<norm>.ln_1``
  (official ``LayerNormParallel``), mmfusion ``<norm>.0`` / ``<norm>.1``
  (:class:`~mmfusion.models.backbones.gemini_mix_vision_transformer.PerModalityNorm`); a
  single-modality MiT norm ``<norm>`` is written to both (``expand_norms``), as the official
  ``expand_state_dict`` does;
- the GeminiFusion block in each attention (:data:`FUSION_RULES`, the mapping documented in
  :mod:`mmfusion.models.fusion.gemini_fusion`).

Host-neutral: mmseg is imported only when :func:`load_mmseg_converter` runs.
"""
import importlib.util
import os.path as osp
import re
from typing import Callable, Dict, List, Optional

from torch import Tensor

from mmfusion.utils.checkpoint_conversion import ConversionError, Mapping

__all__ = ['load_mmseg_converter', 'mit_mappings', 'FUSION_RULES']

FUSION_RULES = (
    (r'\.attn\.cross_attn_0_to_1\.', '.attn.fusion.attn_a.'),
    (r'\.attn\.cross_attn_1_to_0\.', '.attn.fusion.attn_b.'),
    (r'\.attn\.relation_judger\.0\.fc1\.', '.attn.fusion.relation_discriminator.0.'),
    (r'\.attn\.relation_judger\.0\.fc2\.', '.attn.fusion.relation_discriminator.2.'),
    (r'\.attn\.(k_noise|v_noise)\.', r'.attn.fusion.\1.'),
)


def load_mmseg_converter(name: str, function: str) -> Callable:
    """``function`` of the installed mmseg's ``tools/model_converters/<name>.py``.

    Args:
        name (str): Script name without ``.py``, e.g. ``'mit2mmseg'``, ``'vit2mmseg'``.
        function (str): e.g. ``'convert_mit'``.

    Raises:
        ConversionError: If the installed mmseg does not ship that script.
    """
    import mmseg
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'model_converters',
                    f'{name}.py')
    if not osp.isfile(path):
        raise ConversionError(path, 'the installed mmseg does not ship this converter')
    spec = importlib.util.spec_from_file_location(f'mmseg_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, function)


def mit_mappings(encoder: Dict[str, Tensor], dst_prefix: str = '',
                 origin: Optional[Dict[str, str]] = None,
                 expand_norms: Optional[Dict[str, Tensor]] = None) -> List[Mapping]:
    """NVIDIA-style MiT tensors -> mmseg / mmfusion MiT names, one :class:`Mapping` each.

    Each tensor goes through mmseg's ``convert_mit`` on its own (a query with its ``kv``
    partner, which ``convert_mit`` concatenates), so every target name keeps its source name.

    Args:
        encoder (dict[str, Tensor]): Keys ``patch_embed<i>.*``, ``block<i>.*``, ``norm<i>.*``
            (``head.*`` is skipped by ``convert_mit``); per-modality norms as ``.ln_<m>.``.
        dst_prefix (str): Prefix of the target names (``'backbone.'`` in a segmentor).
        origin (dict[str, str], optional): Source name to report per key of ``encoder``
            (default: the key itself).
        expand_norms (dict[str, Tensor], optional): Target state dict; a single norm tensor
            ``<norm>.<name>`` whose target has ``<norm>.0.<name>`` is written to every
            modality ``<norm>.<m>.<name>`` present there.

    Returns:
        list[Mapping]

    Raises:
        ConversionError: If a query has no ``kv`` partner.
    """
    convert_mit = load_mmseg_converter('mit2mmseg', 'convert_mit')
    origin = origin or {}
    mappings = []
    for name, value in encoder.items():
        if '.attn.kv.' in name:
            continue  # merged with its query
        single = {name: value}
        source = origin.get(name, name)
        if '.attn.q.' in name:
            partner = name.replace('.attn.q.', '.attn.kv.')
            if partner not in encoder:
                raise ConversionError(source, f'query without its {partner}')
            single[partner] = encoder[partner]
            source = f'{source} + {origin.get(partner, partner)}'
        for new_name, new_value in convert_mit(single).items():
            new_name = dst_prefix + re.sub(r'\.ln_(\d+)\.', r'.\1.', new_name)
            for pattern, repl in FUSION_RULES:
                new_name = re.sub(pattern, repl, new_name)
            head, _, tail = new_name.rpartition('.')
            if expand_norms is not None and f'{head}.0.{tail}' in expand_norms:
                modality = 0
                while f'{head}.{modality}.{tail}' in expand_norms:
                    mappings.append(Mapping(source, f'{head}.{modality}.{tail}', new_value))
                    modality += 1
            else:
                mappings.append(Mapping(source, new_name, new_value))
    return mappings
