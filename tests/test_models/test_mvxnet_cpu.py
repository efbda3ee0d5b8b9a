"""The stock mmdet3d MVX-Net configs run loss and predict on CPU on the real KITTI sample
(the pattern of mmdet3d's tests/test_models/test_detectors/test_mvxnet.py)."""
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from tests.utils import DEMO_MVXNET_CFG, TINY_MVXNET_CFG, kitti_cfg_options


def loss_and_predict(cfg_path, data_root):
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(cfg_path)  # custom_imports: mmfusion.det3d
    cfg.merge_from_dict(kitti_cfg_options(data_root))
    init_default_scope('mmdet3d')
    from mmdet3d.registry import DATASETS, MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    batch = model.data_preprocessor(pseudo_collate([train_set[0], train_set[1]]), training=True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    total = sum(v if isinstance(v, torch.Tensor) else sum(v) for v in losses.values())
    assert {'loss_cls', 'loss_bbox', 'loss_dir'} <= set(losses)
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    model.eval()
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    with torch.no_grad():
        batch = model.data_preprocessor(pseudo_collate([test_set[0]]), training=False)
        results = model.predict(batch['inputs'], batch['data_samples'])
    pred = results[0].pred_instances_3d
    assert len(pred.bboxes_3d) == len(pred.scores_3d) == len(pred.labels_3d)
    assert len(pred.scores_3d) <= cfg.model.test_cfg.pts.max_num
    assert torch.isfinite(pred.bboxes_3d.tensor).all()


def test_tiny_config_loss_and_predict(kitti_infos_root):
    loss_and_predict(TINY_MVXNET_CFG, kitti_infos_root)


@pytest.mark.slow
def test_stock_demo_config_loss_and_predict(kitti_infos_root):
    """The unchanged stock model (ResNet-50 image branch): about a minute on 2 CPU cores."""
    loss_and_predict(DEMO_MVXNET_CFG, kitti_infos_root)
