"""Tests for mmfusion.ops.nms_bev: ``nms_bev`` / ``nms_normal_bev`` against a plain reference.

Reference: exact rotated-rectangle intersection by Sutherland-Hodgman polygon clipping (shapely is
not a dependency), greedy NMS loop in Python. Box input ``[x1, y1, x2, y2, ry]`` is converted
as mmcv does (``[xc, yc, w, h, ry]``); the rectangle is ``centre + R(ry) (+-w/2, +-h/2)`` with
``R(a) = [[cos a, -sin a], [sin a, cos a]]`` (mmcv ``box_iou_rotated_utils.hpp``). Random cases
whose IoUs come within 1e-4 of the threshold are rejected, so the kept set must match exactly.
"""
import importlib
import math

import pytest
import torch

# importlib: ``mmfusion.ops`` may re-export functions named like the submodule.
nms_module = importlib.import_module('mmfusion.ops.nms_bev')
nms_bev = nms_module.nms_bev
nms_normal_bev = nms_module.nms_normal_bev


def _rect(xc, yc, w, h, a):
    c, s = math.cos(a), math.sin(a)
    return [(xc + dx * c - dy * s, yc + dx * s + dy * c)
            for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))]


def _area(poly):
    return abs(sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(poly, poly[1:] + poly[:1]))) / 2


def _clip(subject, clipper):
    """Sutherland-Hodgman: convex ``subject`` clipped by counter-clockwise convex ``clipper``."""
    out = list(subject)
    for a, b in zip(clipper, clipper[1:] + clipper[:1]):
        if not out:
            break
        inp, out = out, []

        def side(p):
            return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

        for p, q in zip(inp, inp[1:] + inp[:1]):
            sp, sq = side(p), side(q)
            if sp >= 0:
                out.append(p)
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def _xywhr(row):
    x1, y1, x2, y2, r = row
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, r


def _iou_rotated(b1, b2):
    r1, r2 = _rect(*_xywhr(b1)), _rect(*_xywhr(b2))
    inter = _area(_clip(r1, r2))
    return inter / (_area(r1) + _area(r2) - inter)


def _iou_aligned(b1, b2):
    iw = max(0.0, min(b1[2], b2[2]) - max(b1[0], b2[0]))
    ih = max(0.0, min(b1[3], b2[3]) - max(b1[1], b2[1]))
    inter = iw * ih
    return inter / ((b1[2] - b1[0]) * (b1[3] - b1[1]) + (b2[2] - b2[0]) * (b2[3] - b2[1]) - inter)


def _reference_nms(boxes, scores, thresh, iou_fn, pre_max_size=None, post_max_size=None):
    """Greedy NMS; returns (kept indices, min |IoU - thresh| over the pairs compared)."""
    rows = boxes.double().tolist()
    order = sorted(range(len(rows)), key=lambda i: -float(scores[i]))
    if pre_max_size is not None:
        order = order[:pre_max_size]
    keep, margin = [], float('inf')
    for i in order:
        suppressed = False
        for k in keep:
            iou = iou_fn(rows[k], rows[i])
            margin = min(margin, abs(iou - thresh))
            if iou > thresh:
                suppressed = True
                break
        if not suppressed:
            keep.append(i)
    if post_max_size is not None:
        keep = keep[:post_max_size]
    return keep, margin


def _random_boxes(seed, num, spread=6.0):
    gen = torch.Generator().manual_seed(seed)
    xc = torch.rand(num, generator=gen) * spread
    yc = torch.rand(num, generator=gen) * spread
    w = 0.5 + torch.rand(num, generator=gen) * 3.5
    h = 0.5 + torch.rand(num, generator=gen) * 1.5
    r = (torch.rand(num, generator=gen) * 2 - 1) * math.pi
    boxes = torch.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2, r], dim=1)
    scores = torch.randperm(num, generator=gen).float() / num  # distinct scores
    return boxes, scores


def _random_cases(fn_iou, count, num=40, **kwargs):
    """Random (boxes, scores, thresh) cases whose IoUs stay 1e-4 away from the threshold."""
    cases, seed = [], 0
    while len(cases) < count:
        assert seed < 50 * count
        boxes, scores = _random_boxes(seed, num)
        thresh = (0.05, 0.2, 0.4, 0.6)[len(cases) % 4]
        ref, margin = _reference_nms(boxes, scores, thresh, fn_iou, **kwargs)
        if margin > 1e-4 and len(ref) < num:  # something suppressed, no near-threshold IoU
            cases.append((boxes, scores, thresh, ref))
        seed += 1
    return cases


ROTATED_CASES = _random_cases(_iou_rotated, 12)
ALIGNED_CASES = _random_cases(_iou_aligned, 8)


@pytest.mark.parametrize('case', range(len(ROTATED_CASES)))
def test_nms_bev_random_rotated(case):
    boxes, scores, thresh, ref = ROTATED_CASES[case]
    keep = nms_bev(boxes, scores, thresh)
    assert keep.dtype == torch.int64 and keep.dim() == 1
    assert keep.tolist() == ref


@pytest.mark.parametrize('case', range(len(ALIGNED_CASES)))
def test_nms_normal_bev_random(case):
    boxes, scores, thresh, ref = ALIGNED_CASES[case]
    keep = nms_normal_bev(boxes, scores, thresh)
    assert keep.dtype == torch.int64
    assert keep.tolist() == ref


def test_nms_normal_bev_ignores_rotation():
    boxes, scores, thresh, ref = ALIGNED_CASES[0]
    rotated = boxes.clone()
    rotated[:, 4] = torch.linspace(-3, 3, len(boxes))
    assert nms_normal_bev(rotated, scores, thresh).tolist() == ref


@pytest.mark.parametrize('pre,post', [(10, None), (None, 3), (25, 5), (0, None), (None, 0)])
def test_pre_post_max_size(pre, post):
    boxes, scores = _random_boxes(100, 40)
    ref, _ = _reference_nms(boxes, scores, 0.3, _iou_rotated, pre, post)
    keep = nms_bev(boxes, scores, 0.3, pre_max_size=pre, post_max_size=post)
    assert keep.tolist() == ref
    assert keep.dtype == torch.int64 and keep.shape == (len(ref), )


def test_angles_and_direction():
    # A long box rotated by +45 degrees covers the small square at (+1, +1) (positive angle turns
    # +x towards +y); at -45 degrees it does not.
    small = [0.75, 0.75, 1.25, 1.25, 0.0]
    for angle, expect_overlap in ((math.pi / 4, True), (-math.pi / 4, False),
                                  (math.pi / 4 + math.pi, True), (3 * math.pi / 4, False)):
        long_box = [-2.0, -0.5, 2.0, 0.5, angle]
        assert (_iou_rotated(long_box, small) > 0) == expect_overlap
        boxes = torch.tensor([long_box, small])
        keep = nms_bev(boxes, torch.tensor([0.9, 0.8]), 0.0)
        assert keep.tolist() == ([0] if expect_overlap else [0, 1])
    # Two equal squares, one rotated by 45 degrees about the common centre: IoU = octagon / union.
    octagon = 8 * (math.sqrt(2) - 1)
    iou = octagon / (8 - octagon)  # ~0.7071
    boxes = torch.tensor([[-1., -1., 1., 1., 0.], [-1., -1., 1., 1., math.pi / 4]])
    assert abs(_iou_rotated(boxes[0].tolist(), boxes[1].tolist()) - iou) < 1e-9
    assert nms_bev(boxes, torch.tensor([0.5, 0.6]), iou - 1e-3).tolist() == [1]
    assert nms_bev(boxes, torch.tensor([0.5, 0.6]), iou + 1e-3).tolist() == [1, 0]
    # Rotating a square by 90 degrees changes nothing.
    boxes = torch.tensor([[-1., -1., 1., 1., 0.], [-1., -1., 1., 1., math.pi / 2]])
    assert nms_bev(boxes, torch.tensor([0.5, 0.6]), 0.99).tolist() == [1]


def test_identical_and_disjoint_boxes():
    box = [1.0, 2.0, 4.0, 3.5, 0.7]
    boxes = torch.tensor([box] * 5)
    scores = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.2])
    assert nms_bev(boxes, scores, 0.5).tolist() == [3]
    assert nms_bev(boxes, scores, 0.999).tolist() == [3]
    assert nms_normal_bev(boxes, scores, 0.5).tolist() == [3]
    # Disjoint boxes on a grid, random angles: nothing suppressed, even at threshold 0.
    gen = torch.Generator().manual_seed(0)
    grid = torch.stack(torch.meshgrid(torch.arange(5.), torch.arange(4.), indexing='ij'), -1)
    centres = grid.reshape(-1, 2) * 10
    angles = torch.rand(len(centres), generator=gen) * 6
    boxes = torch.cat([centres - torch.tensor([2., 1.]), centres + torch.tensor([2., 1.]),
                       angles[:, None]], 1)
    scores = torch.rand(len(centres), generator=gen)
    expected = scores.argsort(descending=True).tolist()
    assert nms_bev(boxes, scores, 0.0).tolist() == expected
    assert nms_normal_bev(boxes, scores, 0.0).tolist() == expected


def test_empty_and_errors():
    for fn in (nms_bev, nms_normal_bev):
        keep = fn(torch.zeros((0, 5)), torch.zeros((0, )), 0.5)
        assert keep.shape == (0, ) and keep.dtype == torch.int64
        with pytest.raises(ValueError, match=r'\(N, 5\)'):
            fn(torch.zeros((3, 4)), torch.zeros((3, )), 0.5)
        with pytest.raises(ValueError, match=r'\(N,\)'):
            fn(torch.zeros((3, 5)), torch.zeros((2, )), 0.5)
    boxes, scores = _random_boxes(1, 10)
    assert nms_bev(boxes, scores, 0.5, pre_max_size=0).shape == (0, )


def test_float64_and_no_grad_leak():
    boxes, scores, thresh, ref = ROTATED_CASES[0]
    b = boxes.double().requires_grad_(True)
    keep = nms_bev(b, scores.double(), thresh)
    assert keep.tolist() == ref and not keep.requires_grad


def test_larger_input_is_fast_enough():
    boxes, scores = _random_boxes(7, 2000, spread=80.0)
    keep = nms_bev(boxes, scores, 0.1, pre_max_size=1500, post_max_size=300)
    assert 0 < len(keep) <= 300
    assert len(set(keep.tolist())) == len(keep)
    # Descending score order.
    assert (scores[keep][1:] <= scores[keep][:-1]).all()


class _FakeCuda(torch.Tensor):
    """CPU tensor that reports a CUDA device, to exercise the dispatch branch without a GPU."""

    @property
    def device(self):
        return torch.device('cuda')


def _plain(t):
    return t.as_subclass(torch.Tensor)


def test_cuda_dispatch_branch(monkeypatch):
    boxes, scores, thresh, ref = ROTATED_CASES[1]
    fake_boxes = torch.Tensor._make_subclass(_FakeCuda, boxes)
    fake_scores = torch.Tensor._make_subclass(_FakeCuda, scores)
    calls = []

    def fake_nms_rotated(dets, sc, iou_threshold):
        # Must receive [xc, yc, w, h, r] boxes in descending score order.
        calls.append('rotated')
        dets, sc = _plain(dets), _plain(sc)
        assert (sc[1:] <= sc[:-1]).all()
        xyxyr = torch.cat([dets[:, :2] - dets[:, 2:4] / 2, dets[:, :2] + dets[:, 2:4] / 2,
                           dets[:, 4:]], 1)
        return None, nms_bev(xyxyr, sc, iou_threshold)

    def fake_nms(b, sc, iou_threshold):
        calls.append('normal')
        assert b.shape[1] == 4
        b = torch.cat([_plain(b), torch.zeros(len(b), 1)], 1)
        return None, nms_normal_bev(b, _plain(sc), iou_threshold)

    monkeypatch.setattr(nms_module, '_MMCV_NMS_ROTATED', fake_nms_rotated)
    monkeypatch.setattr(nms_module, '_MMCV_NMS', fake_nms)
    assert _plain(nms_bev(fake_boxes, fake_scores, thresh)).tolist() == ref
    keep = nms_bev(fake_boxes, fake_scores, thresh, pre_max_size=20, post_max_size=4)
    assert _plain(keep).tolist() == nms_bev(boxes, scores, thresh, 20, 4).tolist()
    assert _plain(nms_normal_bev(fake_boxes, fake_scores, 0.3)).tolist() == nms_normal_bev(
        boxes, scores, 0.3).tolist()
    assert calls == ['rotated', 'rotated', 'normal']
    monkeypatch.setattr(nms_module, '_MMCV_NMS_ROTATED', None)
    monkeypatch.setattr(nms_module, '_MMCV_NMS', None)
    for fn in (nms_bev, nms_normal_bev):
        with pytest.raises(RuntimeError, match='mmcv'):
            fn(fake_boxes, fake_scores, 0.5)


def test_agrees_with_mmcv_cpu_ops():
    """mmcv 2.1.0's CPU box_iou_rotated / nms_rotated / nms, used with mmcv's own conversion."""
    from mmcv.ops import box_iou_rotated, nms, nms_rotated
    assert nms_module._MMCV_NMS_ROTATED is nms_rotated and nms_module._MMCV_NMS is nms
    for boxes, scores, thresh, ref in ROTATED_CASES:
        xywhr = nms_module._xyxyr_to_xywhr(boxes)
        ious = box_iou_rotated(xywhr, xywhr)
        rows = boxes.double().tolist()
        ref_ious = torch.tensor([[_iou_rotated(a, b) for b in rows] for a in rows],
                                dtype=torch.float64)
        torch.testing.assert_close(ious.double(), ref_ious, atol=2e-5, rtol=0)
        xywhr64 = nms_module._xyxyr_to_xywhr(boxes.double())
        ours = nms_module._rotated_pair_iou(
            xywhr64.repeat_interleave(len(rows), 0), xywhr64.repeat(len(rows), 1))
        torch.testing.assert_close(ours.view(len(rows), -1), ref_ious, atol=1e-9, rtol=0)
        order = scores.sort(0, descending=True)[1]
        mmcv_keep = order[nms_rotated(xywhr[order], scores[order], thresh)[1]]
        assert mmcv_keep.tolist() == ref == nms_bev(boxes, scores, thresh).tolist()
    for boxes, scores, thresh, ref in ALIGNED_CASES:
        assert nms(boxes[:, :4].contiguous(), scores, thresh)[1].tolist() == ref
        assert nms_normal_bev(boxes, scores, thresh).tolist() == ref


def test_agrees_with_mmcv_and_mmdet3d_wrappers():
    import warnings

    from mmcv.ops import iou3d
    wrappers = [(iou3d.nms_bev, iou3d.nms_normal_bev)]
    try:
        from mmdet3d.models.layers import box3d_nms
        if box3d_nms.nms_bev is not nms_bev:  # not yet rebound to ours
            wrappers.append((box3d_nms.nms_bev, box3d_nms.nms_normal_bev))
    except Exception:
        pass
    boxes, scores = _random_boxes(100, 40)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        for ref_bev, ref_normal in wrappers:
            for pre, post in ((None, None), (25, 5)):
                assert ref_bev(boxes, scores, 0.3, pre, post).tolist() == nms_bev(
                    boxes, scores, 0.3, pre, post).tolist()
            for boxes_, scores_, thresh, _ in ALIGNED_CASES:
                assert ref_normal(boxes_, scores_, thresh).tolist() == nms_normal_bev(
                    boxes_, scores_, thresh).tolist()
