"""State dicts in the layout of official/source checkpoints, for the converter tests.

Each builder writes the parameter names and shapes that the source model's ``state_dict()``
has (read from the source code named in each docstring), with random values of sensible scale
(BatchNorm variances positive, LayerNorm weights near 1, S4D ``A_logs`` near log(1..N)).
"""
import math
from collections import OrderedDict

import torch

OFFICIAL_D_STATE = 16  # Fusion-Mamba: every SS2D of the FMB uses the default d_state


class Builder:
    """Collects ``name -> tensor`` with a seeded generator."""

    def __init__(self, seed=0):
        self.gen = torch.Generator().manual_seed(seed)
        self.state = OrderedDict()

    def randn(self, *shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=self.gen) * std + mean

    def add(self, name, value):
        assert name not in self.state, name
        self.state[name] = value

    def conv_bn(self, prefix, c1, c2, k):
        """YOLOv5 ``Conv``: ``conv`` (no bias) + ``bn`` (BatchNorm2d)."""
        self.add(prefix + 'conv.weight', self.randn(c2, c1, k, k, std=1 / math.sqrt(c1 * k * k)))
        self.batch_norm(prefix + 'bn.', c2)

    def batch_norm(self, prefix, c):
        self.add(prefix + 'weight', 1 + self.randn(c, std=0.1))
        self.add(prefix + 'bias', self.randn(c, std=0.1))
        self.add(prefix + 'running_mean', self.randn(c, std=0.1))
        self.add(prefix + 'running_var', 0.5 + torch.rand(c, generator=self.gen))
        self.add(prefix + 'num_batches_tracked', torch.tensor(100))

    def layer_norm(self, prefix, c):
        self.add(prefix + 'weight', 1 + self.randn(c, std=0.1))
        self.add(prefix + 'bias', self.randn(c, std=0.1))

    def linear(self, prefix, c1, c2, bias=True):
        self.add(prefix + 'weight', self.randn(c2, c1, std=1 / math.sqrt(c1)))
        if bias:
            self.add(prefix + 'bias', self.randn(c2, std=0.1))


# ------------------------------------------------------------------------------------------------
# YOLOv5 / Fusion-Mamba (github.com/EhanDong/Fusion-Mamba models/common.py, ultralytics/yolov5)
# ------------------------------------------------------------------------------------------------


def yolov5_focus(b, prefix, c1, c2):
    b.conv_bn(prefix + 'conv.', 4 * c1, c2, 3)


def yolov5_c3(b, prefix, c1, c2, n):
    c_ = c2 // 2
    b.conv_bn(prefix + 'cv1.', c1, c_, 1)
    b.conv_bn(prefix + 'cv2.', c1, c_, 1)
    b.conv_bn(prefix + 'cv3.', 2 * c_, c2, 1)
    for i in range(n):
        b.conv_bn(f'{prefix}m.{i}.cv1.', c_, c_, 1)
        b.conv_bn(f'{prefix}m.{i}.cv2.', c_, c_, 3)


def yolov5_spp(b, prefix, c1, c2):
    c_ = c1 // 2
    b.conv_bn(prefix + 'cv1.', c1, c_, 1)
    b.conv_bn(prefix + 'cv2.', 4 * c_, c2, 1)


def _ss2d_scan_params(b, prefix, d_inner, rank, d_state):
    b.add(prefix + 'x_proj_weight', b.randn(4, rank + 2 * d_state, d_inner,
                                            std=1 / math.sqrt(d_inner)))
    b.add(prefix + 'dt_projs_weight', b.randn(4, d_inner, rank, std=1 / math.sqrt(rank)))
    dt = torch.exp(torch.rand(4, d_inner, generator=b.gen) * (math.log(0.1) - math.log(1e-3))
                   + math.log(1e-3))
    b.add(prefix + 'dt_projs_bias', dt + torch.log(-torch.expm1(-dt)))
    a_log = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(4 * d_inner, 1)
    b.add(prefix + 'A_logs', a_log + b.randn(4 * d_inner, d_state, std=0.05))
    b.add(prefix + 'Ds', 1 + b.randn(4 * d_inner, std=0.1))


def official_ss2d(b, prefix, c, d_state=OFFICIAL_D_STATE):
    """Official/VMamba-v0 ``SS2D`` parameters (expand 2, d_conv 3, no projection bias)."""
    d_inner, rank = 2 * c, math.ceil(c / 16)
    b.linear(prefix + 'in_proj.', c, 2 * d_inner, bias=False)
    b.add(prefix + 'conv2d.weight', b.randn(d_inner, 1, 3, 3, std=1 / 3))
    b.add(prefix + 'conv2d.bias', b.randn(d_inner, std=0.1))
    _ss2d_scan_params(b, prefix, d_inner, rank, d_state)
    b.layer_norm(prefix + 'out_norm.', d_inner)
    b.linear(prefix + 'out_proj.', d_inner, c, bias=False)


def official_sscs(b, prefix, c, depth=1):
    """``chnnel_swapping_Vmamba(c, depth)``: ``blocks1`` / ``blocks2`` of ``VSSBlock``."""
    for stream in ('blocks1', 'blocks2'):
        for k in range(depth):
            b.layer_norm(f'{prefix}{stream}.{k}.ln_1.', c)
            official_ss2d(b, f'{prefix}{stream}.{k}.self_attention.', c)


def official_cross_layer(b, prefix, c, depth, d_state=OFFICIAL_D_STATE):
    """``CrossLayer(c, depth)``: ``blocks.K`` of ``Cross_Block`` (``ln_1``, ``ln_2``,
    ``self_attention`` = ``Cross_modal_Vmaba_module``)."""
    d_inner, rank = 2 * c, math.ceil(c / 16)
    for k in range(depth):
        blk = f'{prefix}blocks.{k}.'
        b.layer_norm(blk + 'ln_1.', c)
        b.layer_norm(blk + 'ln_2.', c)
        att = blk + 'self_attention.'
        for i in (1, 2):
            b.linear(f'{att}in_proj{i}.', c, 2 * d_inner, bias=False)
        for i in (1, 2):
            b.add(f'{att}conv2d{i}.weight', b.randn(d_inner, 1, 3, 3, std=1 / 3))
            b.add(f'{att}conv2d{i}.bias', b.randn(d_inner, std=0.1))
        _ss2d_scan_params(b, att, d_inner, rank, d_state)
        for i in (1, 2):
            b.layer_norm(f'{att}out_norm{i}.', d_inner)
        for i in (1, 2):
            b.linear(f'{att}out_proj{i}.', d_inner, c, bias=False)


def fusion_mamba_official_state(width=0.125, depth=0.33, num_dssf=2, nc=1, seed=0):
    """State dict of the official two-stream ``Model`` of ``yolov5l-fusionmamba.yaml`` at the
    given width/depth multiples (the yaml's layers, indices 0..49), with ``num_dssf``
    ``Cross_Block``s per ``CrossLayer`` (official: 8)."""
    def ch(c):
        return int(math.ceil(c * width / 8) * 8)  # YOLOv5 make_divisible(c * gw, 8)

    def n(k):
        return max(round(k * depth), 1) if k > 1 else k

    b = Builder(seed)
    for base in (0, 5):  # stream one: 0-4, stream two: 5-9
        yolov5_focus(b, f'model.{base}.', 3, ch(64))
        b.conv_bn(f'model.{base + 1}.', ch(64), ch(128), 3)
        yolov5_c3(b, f'model.{base + 2}.', ch(128), ch(128), n(3))
        b.conv_bn(f'model.{base + 3}.', ch(128), ch(256), 3)
        yolov5_c3(b, f'model.{base + 4}.', ch(256), ch(256), n(9))
    official_sscs(b, 'model.10.', ch(256))
    official_cross_layer(b, 'model.11.', ch(256), num_dssf)
    for idx in (14, 16):
        b.conv_bn(f'model.{idx}.', ch(256), ch(512), 3)
        yolov5_c3(b, f'model.{idx + 1}.', ch(512), ch(512), n(9))
    official_sscs(b, 'model.18.', ch(512))
    official_cross_layer(b, 'model.19.', ch(512), num_dssf)
    for idx in (22, 25):
        b.conv_bn(f'model.{idx}.', ch(512), ch(1024), 3)
        yolov5_spp(b, f'model.{idx + 1}.', ch(1024), ch(1024))
        yolov5_c3(b, f'model.{idx + 2}.', ch(1024), ch(1024), n(3))
    official_sscs(b, 'model.28.', ch(1024))
    official_cross_layer(b, 'model.29.', ch(1024), num_dssf)
    # YOLOv5 PAN head (35-48) and Detect (49)
    b.conv_bn('model.35.', ch(1024), ch(512), 1)
    yolov5_c3(b, 'model.38.', ch(1024), ch(512), n(3))
    b.conv_bn('model.39.', ch(512), ch(256), 1)
    yolov5_c3(b, 'model.42.', ch(512), ch(256), n(3))
    b.conv_bn('model.43.', ch(256), ch(256), 3)
    yolov5_c3(b, 'model.45.', ch(512), ch(512), n(3))
    b.conv_bn('model.46.', ch(512), ch(512), 3)
    yolov5_c3(b, 'model.48.', ch(1024), ch(1024), n(3))
    b.add('model.49.anchors', torch.rand(3, 3, 2, generator=b.gen) * 10)
    b.add('model.49.anchor_grid', torch.rand(3, 1, 3, 1, 1, 2, generator=b.gen) * 100)
    for i, c in enumerate((ch(256), ch(512), ch(1024))):
        b.add(f'model.49.m.{i}.weight', b.randn(3 * (nc + 5), c, 1, 1, std=0.01))
        b.add(f'model.49.m.{i}.bias', b.randn(3 * (nc + 5), std=0.1))
    return b.state


def yolov5l_state(width=0.125, depth=0.33, stem='focus', seed=0):
    """``yolov5l.pt``'s ``model.state_dict()`` backbone layers 0-9 (ultralytics/yolov5
    ``models/yolov5l.yaml``): v5.0 layout (Focus stem, SPP) or v6+ (``stem='conv6'``: 6x6
    stride-2 Conv stem; SPPF has SPP's parameter names), plus one head layer."""
    def ch(c):
        return int(math.ceil(c * width / 8) * 8)

    def n(k):
        return max(round(k * depth), 1) if k > 1 else k

    b = Builder(seed)
    if stem == 'focus':
        yolov5_focus(b, 'model.0.', 3, ch(64))
    else:
        b.conv_bn('model.0.', 3, ch(64), 6)
    chans = (64, 128, 256, 512, 1024)
    idx = 1
    for i, reps in enumerate((3, 9, 9)):
        b.conv_bn(f'model.{idx}.', ch(chans[i]), ch(chans[i + 1]), 3)
        yolov5_c3(b, f'model.{idx + 1}.', ch(chans[i + 1]), ch(chans[i + 1]), n(reps))
        idx += 2
    b.conv_bn('model.7.', ch(512), ch(1024), 3)
    if stem == 'focus':
        yolov5_spp(b, 'model.8.', ch(1024), ch(1024))
        yolov5_c3(b, 'model.9.', ch(1024), ch(1024), n(3))
    else:  # v6+: C3 at 8, SPPF at 9
        yolov5_c3(b, 'model.8.', ch(1024), ch(1024), n(3))
        yolov5_spp(b, 'model.9.', ch(1024), ch(1024))
    b.conv_bn('model.10.', ch(1024), ch(512), 1)
    return b.state


# ------------------------------------------------------------------------------------------------
# GeminiFusion segmentation (github.com/JiaDingCN/GeminiFusion main, models/mix_transformer.py,
# models/modules.py, models/segformer.py; checkpoint of main.py: {'segmenter': DDP state_dict})
# ------------------------------------------------------------------------------------------------


def geminifusion_official_state(embed_dims=(16, 32, 80, 128), depths=(1, 1, 1, 1),
                                sr_ratios=(8, 4, 2, 1), mlp_ratio=4, embedding_dim=32,
                                num_classes=40, seed=0):
    """``WeTr.state_dict()`` of a MiT GeminiFusion segmenter, keys as DDP saves them
    (``module.`` prefix), in the official registration order."""
    b = Builder(seed)
    enc = 'module.encoder.'

    def ln_parallel(prefix, c):
        for i in (0, 1):
            b.layer_norm(f'{prefix}ln_{i}.', c)

    for i, c in enumerate(embed_dims):
        c_in = 3 if i == 0 else embed_dims[i - 1]
        k = 7 if i == 0 else 3
        p = f'{enc}patch_embed{i + 1}.'
        b.add(p + 'proj.module.weight', b.randn(c, c_in, k, k, std=1 / math.sqrt(c_in * k * k)))
        b.add(p + 'proj.module.bias', b.randn(c, std=0.1))
        ln_parallel(p + 'norm.', c)
    for i, (c, depth, sr) in enumerate(zip(embed_dims, depths, sr_ratios)):
        for j in range(depth):
            p = f'{enc}block{i + 1}.{j}.'
            ln_parallel(p + 'norm1.', c)
            b.linear(p + 'attn.q.module.', c, c)
            b.linear(p + 'attn.kv.module.', c, 2 * c)
            b.linear(p + 'attn.proj.module.', c, c)
            if sr > 1:
                b.add(p + 'attn.sr.module.weight',
                      b.randn(c, c, sr, sr, std=1 / (sr * math.sqrt(c))))
                b.add(p + 'attn.sr.module.bias', b.randn(c, std=0.1))
                ln_parallel(p + 'attn.norm.', c)
            for direction in ('cross_attn_0_to_1', 'cross_attn_1_to_0'):
                b.add(f'{p}attn.{direction}.in_proj_weight',
                      b.randn(3 * c, c, std=1 / math.sqrt(c)))
                b.add(f'{p}attn.{direction}.in_proj_bias', b.randn(3 * c, std=0.1))
                b.linear(f'{p}attn.{direction}.out_proj.', c, c)
            b.linear(p + 'attn.relation_judger.0.fc1.', 2 * c, c)
            b.linear(p + 'attn.relation_judger.0.fc2.', c, c)
            b.add(p + 'attn.k_noise.weight', b.randn(2, c))
            b.add(p + 'attn.v_noise.weight', b.randn(2, c))
            ln_parallel(p + 'norm2.', c)
            b.linear(p + 'mlp.fc1.module.', c, mlp_ratio * c)
            b.add(p + 'mlp.dwconv.dwconv.weight', b.randn(mlp_ratio * c, 1, 3, 3, std=1 / 3))
            b.add(p + 'mlp.dwconv.dwconv.bias', b.randn(mlp_ratio * c, std=0.1))
            b.linear(p + 'mlp.fc2.module.', mlp_ratio * c, c)
        ln_parallel(f'{enc}norm{i + 1}.', c)
    dec = 'module.decoder.'
    for i in (4, 3, 2, 1):
        b.linear(f'{dec}linear_c{i}.proj.', embed_dims[i - 1], embedding_dim)
    b.add(dec + 'linear_fuse.conv.weight',
          b.randn(embedding_dim, 4 * embedding_dim, 1, 1, std=1 / math.sqrt(4 * embedding_dim)))
    b.batch_norm(dec + 'linear_fuse.bn.', embedding_dim)
    b.add(dec + 'linear_pred.weight', b.randn(num_classes, embedding_dim, 1, 1, std=0.1))
    b.add(dec + 'linear_pred.bias', b.randn(num_classes, std=0.1))
    b.add('module.alpha', torch.ones(2))
    return b.state


# ------------------------------------------------------------------------------------------------
# pretrained backbones
# ------------------------------------------------------------------------------------------------


def torchvision_resnet50_state(seed=0):
    """torchvision ``resnet50()`` ``state_dict()`` (``resnet50-0676ba61.pth`` /
    ``resnet50-19c8e357.pth`` layout): Bottleneck blocks 3/4/6/3, ``fc`` 2048 -> 1000."""
    b = Builder(seed)
    b.add('conv1.weight', b.randn(64, 3, 7, 7, std=0.05))
    b.batch_norm('bn1.', 64)
    in_c = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        for i in range(blocks):
            p = f'layer{stage + 1}.{i}.'
            b.add(p + 'conv1.weight', b.randn(width, in_c, 1, 1, std=1 / math.sqrt(in_c)))
            b.batch_norm(p + 'bn1.', width)
            b.add(p + 'conv2.weight', b.randn(width, width, 3, 3, std=1 / math.sqrt(9 * width)))
            b.batch_norm(p + 'bn2.', width)
            b.add(p + 'conv3.weight', b.randn(4 * width, width, 1, 1, std=1 / math.sqrt(width)))
            b.batch_norm(p + 'bn3.', 4 * width)
            if i == 0:
                b.add(p + 'downsample.0.weight',
                      b.randn(4 * width, in_c, 1, 1, std=1 / math.sqrt(in_c)))
                b.batch_norm(p + 'downsample.1.', 4 * width)
            in_c = 4 * width
    b.linear('fc.', 2048, 1000)
    return b.state


def nvidia_mit_state(embed_dims=(16, 32, 80, 128), depths=(1, 1, 1, 1),
                     sr_ratios=(8, 4, 2, 1), mlp_ratio=4, num_classes=1000, seed=0):
    """NVIDIA SegFormer ``mit_b*.pth`` (github.com/NVlabs/SegFormer ``mix_transformer.py``,
    single modality), in its registration order."""
    b = Builder(seed)
    for i, c in enumerate(embed_dims):
        c_in = 3 if i == 0 else embed_dims[i - 1]
        k = 7 if i == 0 else 3
        b.add(f'patch_embed{i + 1}.proj.weight',
              b.randn(c, c_in, k, k, std=1 / math.sqrt(c_in * k * k)))
        b.add(f'patch_embed{i + 1}.proj.bias', b.randn(c, std=0.1))
        b.layer_norm(f'patch_embed{i + 1}.norm.', c)
    for i, (c, depth, sr) in enumerate(zip(embed_dims, depths, sr_ratios)):
        for j in range(depth):
            p = f'block{i + 1}.{j}.'
            b.layer_norm(p + 'norm1.', c)
            b.linear(p + 'attn.q.', c, c)
            b.linear(p + 'attn.kv.', c, 2 * c)
            b.linear(p + 'attn.proj.', c, c)
            if sr > 1:
                b.add(p + 'attn.sr.weight', b.randn(c, c, sr, sr, std=1 / (sr * math.sqrt(c))))
                b.add(p + 'attn.sr.bias', b.randn(c, std=0.1))
                b.layer_norm(p + 'attn.norm.', c)
            b.layer_norm(p + 'norm2.', c)
            b.linear(p + 'mlp.fc1.', c, mlp_ratio * c)
            b.add(p + 'mlp.dwconv.dwconv.weight', b.randn(mlp_ratio * c, 1, 3, 3, std=1 / 3))
            b.add(p + 'mlp.dwconv.dwconv.bias', b.randn(mlp_ratio * c, std=0.1))
            b.linear(p + 'mlp.fc2.', mlp_ratio * c, c)
        b.layer_norm(f'norm{i + 1}.', c)
    b.linear('head.', embed_dims[-1], num_classes)
    return b.state


def timm_vit_state(embed_dims=64, depth=2, patch=16, grid=14, num_classes=1000, seed=0):
    """timm ``VisionTransformer`` ``state_dict()`` (``vit_base_patch16_224`` names, also those
    of DeiT's ``deit_base_patch16_224``, which wraps them as ``{'model': ...}``)."""
    b = Builder(seed)
    c = embed_dims
    b.add('cls_token', b.randn(1, 1, c, std=0.02))
    b.add('pos_embed', b.randn(1, grid * grid + 1, c, std=0.02))
    b.add('patch_embed.proj.weight', b.randn(c, 3, patch, patch, std=1 / (patch * math.sqrt(3))))
    b.add('patch_embed.proj.bias', b.randn(c, std=0.1))
    for i in range(depth):
        p = f'blocks.{i}.'
        b.layer_norm(p + 'norm1.', c)
        b.linear(p + 'attn.qkv.', c, 3 * c)
        b.linear(p + 'attn.proj.', c, c)
        b.layer_norm(p + 'norm2.', c)
        b.linear(p + 'mlp.fc1.', c, 4 * c)
        b.linear(p + 'mlp.fc2.', 4 * c, c)
    b.layer_norm('norm.', c)
    b.linear('head.', c, num_classes)
    return b.state


# ------------------------------------------------------------------------------------------------
# GeminiFusion KITTI (branch 3d_object_detection_kitti, Gemini_PointFusion in point_fusion.py)
# ------------------------------------------------------------------------------------------------


def gemini_point_fusion_official(b, prefix, img_channels=256, pts_channels=64, mid=128, out=128,
                                 levels=5):
    """``Gemini_PointFusion`` parameters and buffers (lateral ConvModules without norm: conv
    with bias; no ``fuse_conv``), in registration order."""
    for i in range(levels):
        b.add(f'{prefix}lateral_convs.{i}.conv.weight',
              b.randn(mid, img_channels, 3, 3, std=1 / math.sqrt(9 * img_channels)))
        b.add(f'{prefix}lateral_convs.{i}.conv.bias', b.randn(mid, std=0.1))
    b.linear(prefix + 'img_transform.0.', mid * levels, out)
    b.batch_norm(prefix + 'img_transform.1.', out)
    b.linear(prefix + 'pts_transform.0.', pts_channels, out)
    b.batch_norm(prefix + 'pts_transform.1.', out)
    for direction in ('cross_attn_0_to_1', 'cross_attn_1_to_0'):
        b.add(f'{prefix}{direction}.in_proj_weight', b.randn(3 * mid, mid, std=1 / math.sqrt(mid)))
        b.add(f'{prefix}{direction}.in_proj_bias', b.randn(3 * mid, std=0.1))
        b.linear(f'{prefix}{direction}.out_proj.', mid, mid)
    b.linear(prefix + 'relation_judger.0.fc1.', 2 * mid, mid)
    b.linear(prefix + 'relation_judger.0.fc2.', mid, mid)
    b.add(prefix + 'k_noise.weight', b.randn(2, mid))
    b.add(prefix + 'v_noise.weight', b.randn(2, mid))
    b.add(prefix + 'alpha', 1 + b.randn(2, std=0.1))
