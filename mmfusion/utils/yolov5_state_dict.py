"""Names of YOLOv5 backbone modules in mmdet's ``CSPDarknet``: the shared key mapping of the
YOLOv5-l and the official Fusion-Mamba checkpoint converters (``tools/model_converters/``).

Source layout (ultralytics/yolov5 ``models/common.py``, as also vendored by
github.com/EhanDong/Fusion-Mamba): a ``Model`` whose ``model`` is an ``nn.Sequential`` of the
yaml's layers, so every key is ``model.<index>.<module path>``. Target: mmdet 3.x
``CSPDarknet`` (``stem``, ``stage1`` .. ``stage4``), which is YOLOv5's backbone (same Focus
patch order, same CSP block, same SPP), with these module names::

    YOLOv5                         mmdet CSPDarknet
    Focus   conv.{conv,bn}         stem            conv.{conv,bn}
    Conv    conv, bn               stageI.0        conv, bn
    C3      cv1 / cv2 / cv3        stageI.{1,2}    main_conv / short_conv / final_conv
            m.K.cv1 / m.K.cv2                      blocks.K.conv1 / blocks.K.conv2
    SPP     cv1 / cv2              stage4.1        conv1 / conv2

Later YOLOv5 releases (v6.0 on, the ``yolov5l.pt`` of today's ultralytics assets) replace the
Focus stem by a 6x6 stride-2 convolution and put the last C3 *before* SPPF: a different
architecture than CSPDarknet's last stage (SPP, then the CSP block), so only the v5.x layout
(Focus, SPP; Fusion-Mamba's code base) is mapped; :func:`is_yolov5_v6_layout` detects the other.

"""
import re
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from torch import Tensor

__all__ = ['CSP_DARKNET_P5_LAYOUT', 'map_yolov5_module_key', 'map_yolov5_stream',
           'is_yolov5_v6_layout', 'layer_indices']

# (YOLOv5 module kind, mmdet CSPDarknet prefix) of one P5 stream, in the yaml order
CSP_DARKNET_P5_LAYOUT: Tuple[Tuple[str, str], ...] = (
    ('Focus', 'stem'), ('Conv', 'stage1.0'), ('C3', 'stage1.1'), ('Conv', 'stage2.0'),
    ('C3', 'stage2.1'), ('Conv', 'stage3.0'), ('C3', 'stage3.1'), ('Conv', 'stage4.0'),
    ('SPP', 'stage4.1'), ('C3', 'stage4.2'))

_C3_RULES = ((r'^cv1\.', 'main_conv.'), (r'^cv2\.', 'short_conv.'), (r'^cv3\.', 'final_conv.'),
             (r'^m\.(\d+)\.cv1\.', r'blocks.\1.conv1.'), (r'^m\.(\d+)\.cv2\.', r'blocks.\1.conv2.'))
_SPP_RULES = ((r'^cv1\.', 'conv1.'), (r'^cv2\.', 'conv2.'))


def map_yolov5_module_key(kind: str, suffix: str) -> Optional[str]:
    """Key of a YOLOv5 module's tensor (``suffix`` after ``model.<index>.``) in mmdet's module.

    Args:
        kind (str): ``'Focus'``, ``'Conv'``, ``'C3'`` or ``'SPP'`` (SPPF has SPP's names).
        suffix (str): e.g. ``'m.0.cv1.bn.weight'``.

    Returns:
        str | None: e.g. ``'blocks.0.conv1.bn.weight'``; None if the name is not one of the
        module's (the caller reports it as unmapped).
    """
    if kind in ('Focus', 'Conv'):
        prefix = 'conv.' if kind == 'Focus' else ''
        return suffix if re.match(rf'^{prefix}(conv|bn)\.', suffix) else None
    rules = _C3_RULES if kind == 'C3' else _SPP_RULES if kind == 'SPP' else None
    if rules is None:
        raise ValueError(f'unknown YOLOv5 module kind {kind!r}')
    for pattern, repl in rules:
        if re.match(pattern, suffix):
            return re.sub(pattern, repl, suffix)
    return None


def is_yolov5_v6_layout(state: Dict[str, Tensor], index: int = 0) -> bool:
    """Whether layer ``index`` is a v6+ 6x6 convolution stem (``model.<index>.conv.weight``)
    instead of a Focus (``model.<index>.conv.conv.weight``)."""
    weight = state.get(f'model.{index}.conv.weight')
    return weight is not None and weight.dim() == 4 and tuple(weight.shape[2:]) == (6, 6)


def map_yolov5_stream(state: Dict[str, Tensor], indices: Sequence[int], dst_prefix: str,
                      layout: Sequence[Tuple[str, str]] = CSP_DARKNET_P5_LAYOUT
                      ) -> Iterator[Tuple[str, str, Tensor]]:
    """Map the YOLOv5 layers ``model.<indices[i]>`` to the CSPDarknet modules of ``layout[i]``.

    Args:
        state (dict[str, Tensor]): Source state dict, keys ``model.<index>.<path>``.
        indices (Sequence[int]): Source layer index of each layout entry.
        dst_prefix (str): Prefix of the target names, e.g. ``'backbone.rgb_stream.'``.
        layout (Sequence[tuple[str, str]]): (kind, CSPDarknet prefix) per layer.

    Yields:
        tuple[str, str, Tensor]: (source name, target name, tensor) for every tensor of the
        mapped layers that has a counterpart; the others are left for the caller to report.
    """
    if len(indices) != len(layout):
        raise ValueError(f'{len(indices)} source layers for {len(layout)} layout entries')
    for index, (kind, module) in zip(indices, layout):
        src_prefix = f'model.{index}.'
        for name, value in state.items():
            if not name.startswith(src_prefix):
                continue
            suffix = name[len(src_prefix):]
            target = map_yolov5_module_key(kind, suffix)
            if target is not None:
                yield name, f'{dst_prefix}{module}.{target}', value


def layer_indices(state: Dict[str, Tensor]) -> List[int]:
    """Sorted layer indices N present as ``model.N.`` in ``state``."""
    found = {int(m.group(1)) for m in (re.match(r'^model\.(\d+)\.', k) for k in state) if m}
    return sorted(found)
