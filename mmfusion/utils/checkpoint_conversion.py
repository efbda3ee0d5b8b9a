"""Shared plumbing of the checkpoint converters in ``tools/model_converters/``.

Every converter script does the same five steps, which live here once:

1. :func:`load_source`: read SRC with ``torch.load(..., weights_only=True)`` (no code from the
   file runs), unwrap the dict the training code saved (``state_dict``, ``model``, ``segmenter``,
   ...), strip a ``module.`` prefix (DataParallel / DDP), cast half-precision tensors to fp32;
2. the converter's own name mapping, which yields :class:`Mapping` entries (source name, target
   name, tensor) and the source tensors it has no counterpart for;
3. :func:`build_target_state` builds the target mmfusion model (or part) from a config and
   :func:`check_mapping` compares every mapped tensor with it: the first target name that does
   not exist or whose shape differs stops the conversion with a one-line error naming both
   names and both shapes (a MiT-B5 checkpoint given for a MiT-B3 config, a wrong width);
4. :class:`ConversionReport` prints the summary (mapped / unmapped / missing counts, every
   unmapped source tensor with its shape, the target tensors left at their initialisation);
5. :func:`save_checkpoint` writes DST atomically (a temporary file in DST's folder, then
   ``os.replace``), as ``{'state_dict': ..., 'meta': ...}``, which mmengine's ``load_from``,
   ``init_cfg=dict(type='Pretrained', checkpoint=DST)`` and ``tools/test.py`` read.

:func:`run_cli` wraps a converter's ``main``: a :class:`ConversionError` becomes the message on
stderr and exit status 2.

Host-neutral: imports only torch and mmengine at import time; the host library of a target
model is imported through the config's ``custom_imports`` when the model is built.
"""
import os.path as osp
import pickle
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmfusion.converters._io import atomic_open

__all__ = ['ConversionError', 'Mapping', 'ConversionReport', 'load_source', 'strip_prefix',
           'build_target', 'build_target_state', 'check_mapping', 'add_common_arguments',
           'finish_conversion', 'save_checkpoint', 'run_cli', 'PICKLED_MODEL_HINT']

WRAPPER_KEYS = ('state_dict', 'model', 'segmenter', 'module')

PICKLED_MODEL_HINT = (
    'a pickled whole model (e.g. a YOLOv5 training checkpoint) cannot be read without its '
    'source code: turn it into a state dict first, with the source repository on PYTHONPATH: '
    "python -c \"import torch; c = torch.load('SRC', weights_only=False); "
    "m = c.get('ema') or c['model']; torch.save(m.float().state_dict(), 'SRC_state_dict.pth')\"")


class ConversionError(ValueError):
    """A source checkpoint that cannot be converted; the one-line message names the file."""

    def __init__(self, path: str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f'{self.path}: {problem}')


class Mapping(NamedTuple):
    """One converted tensor: ``source`` name(s) in SRC, ``target`` name in DST, its value."""
    source: str
    target: str
    value: Tensor


def _shape(value) -> Tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, 'shape') else tuple(value)


@dataclass
class ConversionReport:
    """What a conversion did; :meth:`summary` is what the converters print.

    Attributes:
        mapped (int): Tensors written to DST.
        unmapped (list[tuple[str, tuple]]): Source tensors with no counterpart in the target
            (name, shape); they are not written.
        missing (list[str]): Target tensors that no source tensor fills (they keep their
            initialisation when DST is loaded); the summary lists the first
            ``max_missing_listed``.
        notes (list[str]): Further lines (casts, conventions applied).
    """
    mapped: int = 0
    unmapped: List[Tuple[str, Tuple[int, ...]]] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    max_missing_listed: int = 20

    def summary(self) -> str:
        lines = [f'mapped {self.mapped}, unmapped {len(self.unmapped)}, '
                 f'missing {len(self.missing)}']
        if self.unmapped:
            lines.append('unmapped source tensors (no counterpart in the target, not written):')
            lines += [f'  {name} {list(shape)}' for name, shape in self.unmapped]
        if self.missing:
            lines.append('missing target tensors (keep their initialisation):')
            lines += [f'  {name}' for name in self.missing[:self.max_missing_listed]]
            if len(self.missing) > self.max_missing_listed:
                lines.append(f'  ... and {len(self.missing) - self.max_missing_listed} more')
        lines += self.notes
        return '\n'.join(lines)


def strip_prefix(state: Dict[str, Tensor], prefix: str) -> Dict[str, Tensor]:
    """Remove ``prefix`` from every key if *all* keys carry it; else return ``state`` as is."""
    if state and all(k.startswith(prefix) for k in state):
        return OrderedDict((k[len(prefix):], v) for k, v in state.items())
    return state


def load_source(path: str, wrapper_keys: Sequence[str] = WRAPPER_KEYS,
                notes: Optional[List[str]] = None,
                allow_pickle: bool = False) -> Dict[str, Tensor]:
    """Read SRC as a flat ``{name: tensor}`` state dict, without running code from the file.

    Args:
        path (str): SRC.
        wrapper_keys (Sequence[str]): Keys of the wrapping dict to descend into, tried in
            order (``{'state_dict': ...}`` of mmengine, ``{'model': ...}`` of DeiT/YOLO-style
            state dicts, ``{'segmenter': ...}`` of GeminiFusion).
        notes (list[str], optional): Receives a line per cast applied.
        allow_pickle (bool): Read with ``weights_only=False`` (runs code named in the file:
            only for files you trust, e.g. an mmengine training checkpoint, whose message hub
            holds mmengine/numpy objects). Defaults to False.

    Returns:
        dict[str, Tensor]: fp32 tensors (fp16/bf16 ones cast), ``module.`` prefix removed.

    Raises:
        ConversionError: If the file is missing, is no weights-only checkpoint (a pickled
            model: see :data:`PICKLED_MODEL_HINT`), or holds no state dict.
    """
    if not osp.isfile(path):
        raise ConversionError(path, 'no such file')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=not allow_pickle)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, ModuleNotFoundError,
            EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConversionError(
            path, f'not a weights-only torch checkpoint ({type(err).__name__}: {first[:120]}); '
            f'{PICKLED_MODEL_HINT}; or, for a file you trust, --allow-pickle') from None
    seen = []
    while isinstance(obj, dict) and not all(isinstance(v, Tensor) for v in obj.values()):
        key = next((k for k in wrapper_keys if isinstance(obj.get(k), dict)), None)
        if key is None:
            others = sorted(k for k, v in obj.items() if not isinstance(v, Tensor))[:5]
            raise ConversionError(
                path, f'no state dict found (looked under {list(wrapper_keys)} after '
                f'{seen or "the top level"}; non-tensor entries: {others})')
        seen.append(key)
        obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise ConversionError(path, f'expected a state dict, got {type(obj).__name__}')
    state = strip_prefix(OrderedDict(obj), 'module.')
    cast = 0
    for name, value in state.items():
        if value.dtype in (torch.float16, torch.bfloat16):
            state[name] = value.float()
            cast += 1
    if cast and notes is not None:
        notes.append(f'cast {cast} half-precision tensors to float32')
    return state


def build_target(config: str, part: Optional[str] = None,
                 cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """The model (or ``model.<part>``) that ``config`` builds, not initialised.

    The config's ``custom_imports`` registers the host library's modules (e.g.
    ``mmfusion.det``); ``default_scope`` selects the registry.

    Args:
        config (str): Config file path.
        part (str, optional): Build only this sub-config of ``model`` (e.g. ``'backbone'``).
        cfg_options (dict, optional): Overrides merged into the config (``--cfg-options``).

    Raises:
        ConversionError: If the config file does not exist or has no ``model.<part>``.
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings

    if not osp.isfile(config):
        raise ConversionError(config, 'no such config file')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', None))
    model_cfg = cfg.model
    if part is not None:
        if part not in model_cfg:
            raise ConversionError(config, f'the model config has no {part!r}')
        model_cfg = model_cfg[part]
    return MODELS.build(model_cfg)


def build_target_state(config: str, part: Optional[str] = None,
                       cfg_options: Optional[dict] = None,
                       keep_prefix: bool = True) -> Dict[str, Tensor]:
    """State dict of :func:`build_target`'s module; with ``part`` and ``keep_prefix`` the keys
    carry the ``'<part>.'`` prefix, as in the whole model (else they are the part's own, as an
    ``init_cfg=dict(type='Pretrained', ...)`` of that part reads them)."""
    model = build_target(config, part, cfg_options)
    prefix = f'{part}.' if part and keep_prefix else ''
    state = model.state_dict()
    out = OrderedDict((prefix + k, v) for k, v in state.items())
    # module versions (e.g. mmdet3d's spconv-2 kernels, version 2: no layout change at load)
    out._metadata = OrderedDict(((prefix + k) if k else prefix[:-1], v)
                                for k, v in getattr(state, '_metadata', {}).items())
    return out


def check_mapping(mappings: Iterable[Mapping], target: Dict[str, Tensor], src_path: str,
                  ignore_missing: Callable[[str], bool] = lambda name: False
                  ) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """Check every mapped tensor against the target model; collect the target's gaps.

    Args:
        mappings (Iterable[Mapping]): The converter's output.
        target (dict[str, Tensor]): Target state dict (:func:`build_target_state`).
        src_path (str): SRC, named in errors.
        ignore_missing (callable): Target names not to list as missing (e.g. buffers the
            target computes itself).

    Returns:
        tuple: The DST state dict (target names, in mapping order) and the sorted list of target
        names no mapping fills.

    Raises:
        ConversionError: At the first mapping whose target name does not exist, whose shape
            differs from the target's, or that fills a name twice.
    """
    out = OrderedDict()
    for source, name, value in mappings:
        if name in out:
            raise ConversionError(src_path, f'{source} maps to {name}, already filled')
        if name not in target:
            raise ConversionError(
                src_path, f'architecture mismatch: {source} {list(value.shape)} maps to {name}, '
                'which the target model does not have')
        if tuple(value.shape) != tuple(target[name].shape):
            raise ConversionError(
                src_path, f'architecture mismatch: {source} has shape {list(value.shape)}, the '
                f'target {name} has {list(target[name].shape)}')
        out[name] = value.to(target[name].dtype) if value.is_floating_point() else value
    missing = sorted(k for k in target if k not in out and not ignore_missing(k))
    if getattr(target, '_metadata', None):
        out._metadata = target._metadata  # DST is in the target's own layout and versions
    return out, missing


def add_common_arguments(parser, default_config: str, src_help: str) -> None:
    """``src``, ``dst``, ``--config``, ``--cfg-options`` of every converter."""
    from mmengine.config import DictAction
    parser.add_argument('src', help=src_help)
    parser.add_argument('dst', help='output checkpoint (written atomically: temporary file, '
                        'then renamed)')
    parser.add_argument('--config', default=default_config,
                        help='mmfusion config that DST must fit (default: %(default)s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides of the config, key=value (e.g. a smaller width)')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='read SRC with torch.load(weights_only=False): runs code named in '
                        'the file, so only for files you trust (e.g. an mmengine training '
                        'checkpoint with its message hub); default: weights-only')


def finish_conversion(report: ConversionReport, state: Dict[str, Tensor],
                      mappings: Sequence[Mapping], target: Dict[str, Tensor], src: str,
                      dst: str, meta: Optional[dict] = None,
                      ignore_missing: Callable[[str], bool] = lambda name: False
                      ) -> ConversionReport:
    """Check ``mappings`` against ``target``, fill ``report``, save DST, print the summary.

    Source names of a mapping may join several tensors with ``' + '`` (e.g. a query and its
    key/value projection merged into one); each counts as used.

    Raises:
        ConversionError: As :func:`check_mapping`, or if nothing maps.
    """
    if not mappings:
        raise ConversionError(src, 'no tensor of the expected source layout found')
    dst_state, report.missing = check_mapping(mappings, target, src, ignore_missing)
    used = {name for m in mappings for name in m.source.split(' + ')}
    report.unmapped = [(k, tuple(v.shape)) for k, v in state.items() if k not in used]
    report.mapped = len(dst_state)
    save_checkpoint(dst_state, dst, meta=dict(meta or {}, source=osp.abspath(src)))
    print(report.summary())
    print(f'saved {dst}')
    return report


def save_checkpoint(state: Dict[str, Tensor], dst: str, meta: Optional[dict] = None) -> None:
    """Write ``{'state_dict': state, 'meta': meta}`` to ``dst`` atomically.

    The tensors are made contiguous and cloned out of any shared storage, so DST holds only
    what it names; the state dict's ``_metadata`` (module versions, which mmdet3d's sparse
    convolutions read to decide the kernel layout at load time) is kept.
    """
    tensors = OrderedDict((k, v.detach().contiguous().clone()) for k, v in state.items())
    if getattr(state, '_metadata', None):
        tensors._metadata = state._metadata  # as nn.Module.state_dict() keeps it
    payload = {'state_dict': tensors, 'meta': dict(meta or {})}
    with atomic_open(dst, 'wb') as f:
        torch.save(payload, f)


def run_cli(main: Callable[[Optional[Sequence[str]]], None],
            argv: Optional[Sequence[str]] = None) -> None:
    """Run a converter's ``main(argv)``; a :class:`ConversionError` exits with status 2."""
    try:
        main(argv)
    except ConversionError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
