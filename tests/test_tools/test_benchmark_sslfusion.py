"""tools/analysis_tools/benchmark_sslfusion.py on the real KITTI sample with the small sample
config: one row at 5k voxels (report fields, part times, sparse-conv FLOPs from the rule books
agreeing with what torch's counter sees on CPU), and the scan merging that reaches a voxel count
one frame does not hold."""
import json
import os.path as osp

import pytest

from tests.utils import REPO_ROOT, load_tool

pytestmark = pytest.mark.default_scope('mmdet3d')

SAMPLE_CFG = osp.join(REPO_ROOT, 'projects', 'SSLFusion', 'configs',
                      'sslfusion_r18-fpn_voxel-rcnn_1xb2-overfit_kitti-sample-3d-3class.py')


def _load_tool():
    return load_tool('tools/analysis_tools/benchmark_sslfusion.py', 'benchmark_sslfusion_tool')


def test_one_row_report(kitti_infos_root, tmp_path):
    tool = _load_tool()
    out = str(tmp_path / 'bench.json')
    tool.main(['--config', SAMPLE_CFG, '--data-root', kitti_infos_root, '--sizes', '5000',
               '--repeat', '1', '--warmup', '0', '--out', out])
    with open(out) as f:
        report = json.load(f)
    assert report['complete'] and report['env']['torch']
    assert len(report['rows']) == 1
    row = report['rows'][0]
    assert row['n_cap'] == 5000 and row['n_voxels'] == 5000 and row['reached']
    assert row['frames'] == [0] and row['lfm_mode'] == 'latent'
    assert row['latency_s']['median'] > 0 and row['peak_mem_mib'] is not None
    parts = row['parts_s']
    assert set(parts) == set(tool.PARTS)
    assert all(parts[p] > 0 for p in ('image_branch', 'middle_encoder', 'saf_fusion', 'rpn',
                                      'roi_head'))
    assert parts['saf_fusion'] < parts['middle_encoder']
    assert sum(v for k, v in parts.items() if k != 'saf_fusion') <= row['latency_s']['runs'][0]

    flops = row['flops']
    assert flops['sparse_conv_gflops'] > 0 and flops['dense_gflops'] > 0
    assert flops['total_gflops'] == pytest.approx(flops['dense_gflops']
                                                  + flops['sparse_conv_gflops'])
    assert flops['sparse_conv_calls'] == len(flops['sparse_conv_layers']) > 0
    # on CPU spconv's Native GEMMs are torch.mm calls the counter sees: the rule book matches
    for layer in flops['sparse_conv_layers']:
        assert layer['flops'] == layer['counter_flops'], layer
    # the first subm conv of the input: 4 -> C channels, pairs from a half rule book + centre
    first = flops['sparse_conv_layers'][0]
    assert first['subm'] and first['c_in'] == 4 and first['pairs'] > 5000

    params = report['params']['latent']
    assert params['total'] == params['trainable'] > 0
    assert 0 < params['per_part']['saf_fusion'] < params['per_part']['middle_encoder']


def test_merging_other_scans_reaches_more_voxels(kitti_infos_root):
    tool = _load_tool()
    args = tool.parse_args(['--config', SAMPLE_CFG, '--data-root', kitti_infos_root])
    cfg = tool.load_config(args.config, args.data_root, args.ann_file, args.pts_prefix)
    frame_data = tool.FrameData(cfg, '000000')
    model = tool.build_model(cfg, 30000)
    alone, _, frames = tool.prepare(frame_data, model, 30000, merge=False)
    assert frames == [0] and tool.voxels_of(alone) < 30000
    merged, _, frames = tool.prepare(frame_data, model, 30000, merge=True)
    assert len(frames) > 1 and frames[0] == 0
    assert tool.voxels_of(merged) == 30000
    with pytest.raises(KeyError, match='frame 000042'):
        tool.FrameData(cfg, '000042')


def test_attention_flops_are_counted(kitti_infos_root):
    """torch's counter misses CPU scaled-dot-product attention; the tool adds it."""
    import torch
    import torch.nn.functional as F
    tool = _load_tool()
    args = tool.parse_args(['--config', SAMPLE_CFG, '--data-root', kitti_infos_root])
    cfg = tool.load_config(args.config, args.data_root, args.ann_file, args.pts_prefix)
    frame_data = tool.FrameData(cfg, '000000')
    model = tool.build_model(cfg, 2000, lfm_mode='attention')
    data, _, _ = tool.prepare(frame_data, model, 2000, merge=False)
    flops = tool.count_flops(model, data)
    assert flops['sdpa_calls_added'] == 7  # one per SAF layer
    assert flops['sdpa_gflops_added'] > 0
    assert F.scaled_dot_product_attention is torch._C._nn.scaled_dot_product_attention
