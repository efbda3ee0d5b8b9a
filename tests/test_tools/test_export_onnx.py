"""tools/deployment/export_fusion_block_onnx.py: a Fusion-Mamba block (FMB) exported to ONNX and
run in onnxruntime on features of a real LLVIP pair, against PyTorch; the export-time selective
scan against the step-by-step reference."""
import os.path as osp

import pytest
import torch

from mmfusion.ops.selective_scan import selective_scan_export, selective_scan_reference
from tests.test_models.test_fusion_mamba_blocks import llvip_features
from tests.utils import load_tool

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')


tool = load_tool('tools/deployment/export_fusion_block_onnx.py', 'export_fusion_block_onnx')


def test_export_scan_matches_reference():
    gen = torch.Generator().manual_seed(0)
    batch, dim, length, dstate = 2, 12, 19, 4
    u, delta, z = (torch.randn(batch, dim, length, generator=gen) for _ in range(3))
    A = -torch.rand(dim, dstate, generator=gen) * 3
    D, bias = torch.randn(dim, generator=gen), torch.randn(dim, generator=gen)
    layouts = [(torch.randn(batch, 3, dstate, length, generator=gen),  # grouped, G differ
                torch.randn(batch, 2, dstate, length, generator=gen)),
               (torch.randn(batch, dstate, length, generator=gen),  # shared / time-invariant
                torch.randn(dim, dstate, generator=gen))]
    for B, C in layouts:
        kwargs = dict(D=D, z=z, delta_bias=bias, delta_softplus=True, return_last_state=True)
        out, last = selective_scan_export(u, delta, A, B, C, **kwargs)
        ref, ref_last = selective_scan_reference(u, delta, A, B, C, **kwargs)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(last, ref_last, rtol=1e-5, atol=1e-6)


def test_export_fmb_runs_in_onnxruntime_on_llvip(tmp_path):
    torch.manual_seed(0)
    args = tool.parse_args(['--block', 'fmb', '--channels', '16', '--num-dssf-blocks', '2',
                            '--d-state', '8'])
    source = tool.build_block(args)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # "trained" weights, saved inside a larger model's checkpoint
        for p in source.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    ckpt = str(tmp_path / 'detector.pth')
    state = {f'backbone.fusion.1.{k}': v for k, v in source.state_dict().items()}
    state['backbone.stem.weight'] = torch.zeros(3)
    torch.save(dict(state_dict=state, meta=dict()), ckpt)

    args = tool.parse_args(['--block', 'fmb', '--channels', '16', '--num-dssf-blocks', '2',
                            '--d-state', '8', '--checkpoint', ckpt,
                            '--prefix', 'backbone.fusion.1.'])
    block = tool.build_block(args)
    for (name, p), q in zip(block.state_dict().items(), source.state_dict().values()):
        assert torch.equal(p, q), name
    x_rgb, x_ir = llvip_features(size=(8, 10))
    out_file = tool.export_fusion_block(block, (x_rgb, x_ir), str(tmp_path / 'fmb.onnx'))

    model = onnx.load(out_file)
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == tool.DEFAULT_OPSET
    ops = {node.op_type for node in model.graph.node}
    assert 'Loop' in ops  # the selective scans are loops, not unrolled steps
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ['batch', '', 'height', 'width']

    with torch.no_grad():
        expected = block(x_rgb, x_ir)
    actual = tool.run_onnx(out_file, (x_rgb, x_ir))
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        torch.testing.assert_close(a, e, rtol=0, atol=1e-4)
    assert (expected[0] - x_rgb).abs().max() > 1e-2  # the block does something
    # dynamic spatial size: the same file on another feature-map size of the pair
    other = llvip_features(size=(6, 12))
    diffs = tool.max_abs_diff(block, out_file, other)
    assert max(diffs.values()) < 1e-4, diffs
    with pytest.raises(KeyError, match='prefix'):
        tool.build_block(tool.parse_args(['--channels', '16', '--checkpoint', ckpt,
                                          '--prefix', 'neck.']))


def test_export_cli_sscs(tmp_path, capsys):
    out_file = str(tmp_path / 'sscs.onnx')
    tool.main(['--block', 'sscs', '--channels', '8', '--height', '5', '--width', '6',
               '--d-state', '4', '--out', out_file])
    assert osp.isfile(out_file)
    printed = capsys.readouterr().out
    assert 'opset 17' in printed and printed.count('onnxruntime vs PyTorch') == 2
