"""Export a Fusion-Mamba fusion block (FMB, or SSCS / DSSF alone) to ONNX and check it.

The block is traced by the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``,
opset 17 by default: the lowest with ``LayerNormalization``). Its selective scans then run
:func:`mmfusion.ops.selective_scan.selective_scan_export`, a TorchScript loop that becomes one
ONNX ``Loop`` per scan, so the graph is independent of the feature-map size: by default batch,
height and width are dynamic axes. The exported model takes ``x_rgb`` and ``x_ir`` (B, C, H, W)
and returns ``y_rgb`` and ``y_ir`` (B, C, H, W). With ``--verify`` (default) onnxruntime runs
the file at the export size and at a second size, and the outputs are compared with PyTorch.
(The torch.export-based exporter, ``dynamo=True``, also exported a small FMB here, but only for
the traced size; this tool uses the TorchScript exporter for the dynamic sizes.)

Weights: ``--checkpoint`` loads a state dict (a raw one, or an mmengine checkpoint's
``state_dict``); ``--prefix`` selects the block inside a larger model, e.g.
``backbone.fusion_blocks.0.``. Without a checkpoint the block is randomly initialised (useful to
check exportability and runtime only).

Example::

    python tools/deployment/export_fusion_block_onnx.py --block fmb --channels 256 \\
        --height 80 --width 80 --out work_dirs/onnx/fmb_p3.onnx
"""
import argparse
import os
import os.path as osp
import sys
import warnings
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmfusion.models.fusion.dual_state_space_fusion import DualStateSpaceFusion
from mmfusion.models.fusion.fusion_mamba_block import FusionMambaBlock
from mmfusion.models.fusion.state_space_channel_swapping import StateSpaceChannelSwapping

BLOCKS = dict(fmb=FusionMambaBlock, sscs=StateSpaceChannelSwapping, dssf=DualStateSpaceFusion)
INPUT_NAMES = ('x_rgb', 'x_ir')
OUTPUT_NAMES = ('y_rgb', 'y_ir')
DEFAULT_OPSET = 17


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--block', choices=sorted(BLOCKS), default='fmb',
                        help='FusionMambaBlock, StateSpaceChannelSwapping or DualStateSpaceFusion')
    parser.add_argument('--channels', type=int, default=256, help='C of both streams')
    parser.add_argument('--height', type=int, default=80, help='H of the export example')
    parser.add_argument('--width', type=int, default=80, help='W of the export example')
    parser.add_argument('--batch', type=int, default=1, help='B of the export example')
    parser.add_argument('--num-dssf-blocks', type=int, default=8, help='N (fmb, dssf)')
    parser.add_argument('--d-state', type=int, default=16, help='SS2D state size N')
    parser.add_argument('--checkpoint', help='state dict or mmengine checkpoint to load')
    parser.add_argument('--prefix', default='', help='key prefix of the block in --checkpoint')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--static', action='store_true', help='fixed input size (no dynamic axes)')
    parser.add_argument('--no-verify', dest='verify', action='store_false',
                        help='skip the onnxruntime check')
    parser.add_argument('--atol', type=float, default=1e-4, help='tolerance of the check')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/onnx/fusion_block.onnx')
    return parser.parse_args(argv)


def build_block(args: argparse.Namespace) -> nn.Module:
    """The block named by ``args.block``, with ``--checkpoint`` weights if given, in eval mode.

    Raises:
        KeyError: If the checkpoint has no key with ``--prefix`` or misses some of the block's
            parameters (the message lists them).
    """
    kwargs = dict(d_state=args.d_state)
    if args.block == 'fmb':
        kwargs['num_dssf_blocks'] = args.num_dssf_blocks
    elif args.block == 'dssf':
        kwargs['num_blocks'] = args.num_dssf_blocks
    block = BLOCKS[args.block](args.channels, **kwargs)
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
        state = state.get('state_dict', state)
        state = {k[len(args.prefix):]: v for k, v in state.items() if k.startswith(args.prefix)}
        if not state:
            raise KeyError(f'{args.checkpoint}: no key starts with prefix {args.prefix!r}')
        missing, unexpected = block.load_state_dict(state, strict=False)
        if missing:
            raise KeyError(f'{args.checkpoint} (prefix {args.prefix!r}) misses {missing}')
        if unexpected:
            warnings.warn(f'ignored checkpoint keys: {unexpected}')
    return block.eval()


def export_fusion_block(block: nn.Module,
                        inputs: Tuple[Tensor, Tensor],
                        out_file: str,
                        opset: int = DEFAULT_OPSET,
                        dynamic: bool = True) -> str:
    """Trace ``block(x_rgb, x_ir) -> (y_rgb, y_ir)`` into an ONNX file.

    Args:
        block (nn.Module): A two-stream fusion block in eval mode.
        inputs (tuple[Tensor, Tensor]): Example (B, C, H, W) inputs.
        out_file (str): Path of the .onnx file (folders are created).
        opset (int): ONNX opset (>= 17 for LayerNormalization). Defaults to 17.
        dynamic (bool): Batch, height and width as dynamic axes. Defaults to True.

    Returns:
        str: ``out_file``.
    """
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    axes = {0: 'batch', 2: 'height', 3: 'width'}
    dynamic_axes = {name: axes for name in INPUT_NAMES + OUTPUT_NAMES} if dynamic else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)  # shape checks become constants
        warnings.simplefilter('ignore', DeprecationWarning)  # dynamo=False is deliberate, above
        torch.onnx.export(block, tuple(inputs), out_file, input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), opset_version=opset,
                          dynamic_axes=dynamic_axes, dynamo=False)
    return out_file


def run_onnx(onnx_file: str, inputs: Tuple[Tensor, Tensor]) -> Tuple[Tensor, Tensor]:
    """Run the exported file in onnxruntime (CPU). Returns ``(y_rgb, y_ir)`` as tensors."""
    import onnxruntime as ort
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    feeds = {name: x.detach().cpu().numpy() for name, x in zip(INPUT_NAMES, inputs)}
    return tuple(torch.from_numpy(y) for y in session.run(list(OUTPUT_NAMES), feeds))


def max_abs_diff(block: nn.Module, onnx_file: str,
                 inputs: Tuple[Tensor, Tensor]) -> Dict[str, float]:
    """Largest |onnxruntime - PyTorch| per output, on ``inputs``."""
    with torch.no_grad():
        expected = block(*inputs)
    actual = run_onnx(onnx_file, inputs)
    return {name: (a - e).abs().max().item()
            for name, a, e in zip(OUTPUT_NAMES, actual, expected)}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    block = build_block(args)
    shape = (args.batch, args.channels, args.height, args.width)
    gen = torch.Generator().manual_seed(args.seed)
    inputs = tuple(torch.randn(shape, generator=gen) for _ in INPUT_NAMES)
    export_fusion_block(block, inputs, args.out, opset=args.opset, dynamic=not args.static)
    size_mb = osp.getsize(args.out) / 2**20
    print(f'wrote {args.out} ({size_mb:.1f} MiB, opset {args.opset}, '
          f'{"static" if args.static else "dynamic batch/height/width"})')
    if not args.verify:
        return
    checks = [inputs]
    if not args.static:  # another size, to check the dynamic axes
        other = (args.batch, args.channels, args.height + 3, max(1, args.width - 2))
        checks.append(tuple(torch.randn(other, generator=gen) for _ in INPUT_NAMES))
    worst = 0.
    for check in checks:
        diffs = max_abs_diff(block, args.out, check)
        worst = max(worst, *diffs.values())
        print(f'onnxruntime vs PyTorch at {tuple(check[0].shape)}: max |diff| {diffs}')
    if worst > args.atol:
        sys.exit(f'onnxruntime and PyTorch differ by {worst:.3g} > --atol {args.atol}')


if __name__ == '__main__':
    main()
