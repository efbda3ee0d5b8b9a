"""rotated_overlaps_bev (the KITTI-eval overlap) against shapely polygons."""
import math

import numpy as np
import pytest
from shapely.geometry import Polygon

from mmfusion.ops.rotated_overlaps import rotated_overlaps_bev


def kernel_polygon(box):
    """Corners exactly as mmdet3d's rbbox_to_corners: (x, y) + R(-r) (+-dx/2, +-dy/2)."""
    x, y, dx, dy, r = box
    cs, sn = math.cos(r), math.sin(r)
    local = [(-dx / 2, -dy / 2), (-dx / 2, dy / 2), (dx / 2, dy / 2), (dx / 2, -dy / 2)]
    return Polygon([(cs * u + sn * v + x, -sn * u + cs * v + y) for u, v in local])


def reference(boxes, qboxes, criterion):
    out = np.zeros((len(boxes), len(qboxes)))
    for n, b in enumerate(boxes):
        for k, q in enumerate(qboxes):
            pb, pq = kernel_polygon(b), kernel_polygon(q)
            inter = pb.intersection(pq).area
            area1, area2 = pq.area, pb.area  # the kernel's area1 is the query box
            out[n, k] = {-1: inter / (area1 + area2 - inter), 0: inter / area1,
                         1: inter / area2}.get(criterion, inter)
    return out


@pytest.mark.parametrize('criterion', [-1, 0, 1, 2])
def test_matches_polygon_reference(criterion):
    rng = np.random.default_rng(criterion + 5)
    boxes = np.concatenate([rng.uniform(-5, 5, (40, 2)), rng.uniform(0.5, 4, (40, 2)),
                            rng.uniform(-np.pi, np.pi, (40, 1))], 1).astype(np.float32)
    qboxes = boxes[rng.permutation(40)[:25]] + rng.normal(0, 0.4, (25, 5)).astype(np.float32)
    qboxes[:, 2:4] = np.abs(qboxes[:, 2:4]) + 0.1
    ours = rotated_overlaps_bev(boxes, qboxes, criterion)
    assert ours.dtype == np.float32 and ours.shape == (40, 25)
    ref = reference(boxes.astype(np.float64), qboxes.astype(np.float64), criterion)
    np.testing.assert_allclose(ours, ref, atol=2e-5, rtol=1e-4)
    assert (ours > 0).sum() > 20  # the random set really has overlapping pairs


def test_hand_computed_cases():
    square = np.array([[0., 0., 2., 2., 0.]], np.float32)
    rotated = np.array([[0., 0., 2., 2., np.pi / 4]], np.float32)
    # the unit-half-width square and its 45 degree rotation intersect in a regular octagon
    octagon = 8 * (math.sqrt(2) - 1)
    assert rotated_overlaps_bev(square, rotated, 2)[0, 0] == pytest.approx(octagon, rel=1e-6)
    shifted = np.array([[1., 0., 2., 2., 0.]], np.float32)
    assert rotated_overlaps_bev(square, shifted, -1)[0, 0] == pytest.approx(1 / 3, rel=1e-6)
    far = np.array([[10., 0., 2., 2., 0.3]], np.float32)
    assert rotated_overlaps_bev(square, far, -1)[0, 0] == 0
    assert rotated_overlaps_bev(np.zeros((0, 5)), square).shape == (0, 1)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match='query_boxes'):
        rotated_overlaps_bev(np.zeros((2, 5)), np.zeros((2, 4)))
