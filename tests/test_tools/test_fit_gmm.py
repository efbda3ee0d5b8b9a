"""tools/fit_gmm.py on real images: normal-sample selection, CLS features, BIC, the file.

Data: a paired COCO json written here over the bundled real images: the 6 daytime KITTI frames
(well exposed: normal; each is its own "infrared" partner, which the tool never reads) and the
6 LLVIP night pairs (mean luma 0.11-0.26: too dark). Model: a stand-in registered below (the
interface DAMF's detector has: ``data_preprocessor`` + ``extract_cls_features``; a tiny
mmseg ViT with CLS token), and the real ``DAMFDetector`` (tiny stage-0 config of
projects/DAMF), each with a checkpoint the test writes.
"""
import glob
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.model import BaseModel
from mmseg.models.backbones import VisionTransformer
from sklearn.mixture import GaussianMixture

import mmfusion.det  # noqa: F401
from mmfusion.datasets.normal_sample_selection import image_statistics
from mmfusion.models.losses.gmm_nll_loss import GaussianMixturePrior
from tests.utils import load_tool

pytestmark = pytest.mark.default_scope('mmdet')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(REPO, 'tests', 'data')
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
SCALE = (128, 128)


def _load_tool():
    return load_tool('tools/fit_gmm.py', 'fit_gmm_tool')


fit_gmm = _load_tool()


@MODELS.register_module(force=True)
class ClsFeatureStandIn(BaseModel):
    """Stand-in for ``DAMFDetector``: paired data preprocessor + a tiny ViT's CLS token."""

    def __init__(self, data_preprocessor, embed_dims=32, loss_gmm=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.encoder = VisionTransformer(
            img_size=SCALE, patch_size=16, embed_dims=embed_dims, num_layers=2, num_heads=2,
            mlp_ratio=2, with_cls_token=True, output_cls_token=True, final_norm=True)
        self.loss_gmm = MODELS.build(loss_gmm) if loss_gmm is not None else None

    def extract_cls_features(self, imgs):
        return self.encoder(imgs)[-1][1]

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.extract_cls_features(inputs['img'])


@MODELS.register_module(force=True)
class NoClsModel(BaseModel):

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return inputs


@pytest.fixture(scope='module')
def mixed_json(tmp_path_factory):
    """COCO json (data_root tests/data): 6 KITTI frames then 6 LLVIP pairs, no boxes."""
    kitti = sorted(glob.glob(osp.join(DATA, 'kitti', 'training', 'image_2', '*.png')))
    llvip = sorted(glob.glob(osp.join(DATA, 'llvip', 'LLVIP', 'visible', '*', '*.jpg')))
    images = []
    for path in kitti + llvip:
        rel = osp.relpath(path, DATA)
        h, w = mmcv.imread(path).shape[:2]
        images.append(dict(id=len(images) + 1, file_name=rel, height=h, width=w,
                           infrared_file_name=rel.replace('visible', 'infrared')))
    out = tmp_path_factory.mktemp('fit_gmm') / 'mixed.json'
    out.write_text(json.dumps(dict(images=images, annotations=[],
                                   categories=[dict(id=1, name='person')])))
    return str(out), kitti + llvip


def _pipeline(extra=()):
    return [dict(type='LoadPairedImageFromFile'), *extra,
            dict(type='PairedResize', scale=SCALE, keep_ratio=True),
            dict(type='PackPairedDetInputs')]


def _config(tmp_path, ann_file, model=None, test_pipeline=None):
    preprocessor = dict(type='PairedDetDataPreprocessor', mean=MEAN, std=STD, ir_mean=MEAN,
                        ir_std=STD, bgr_to_rgb=True)
    dataset = dict(type='PairedCocoDataset', ann_file=ann_file, data_root=DATA,
                   data_prefix=dict(img='', img_ir=''), metainfo=dict(classes=('person', )))
    cfg = Config(dict(
        default_scope='mmdet',
        custom_imports=dict(imports=['mmfusion.det'], allow_failed_imports=False),
        model=model or dict(
            type='ClsFeatureStandIn', data_preprocessor=preprocessor,
            loss_gmm=dict(type='GMMNegLogLikelihoodLoss', gmm_file='not/fitted/yet.pth')),
        train_dataloader=dict(batch_size=2, dataset=dict(
            type='RepeatDataset', times=2, dataset=dict(
                **dataset, pipeline=_pipeline([dict(type='PairedRandomFlip', prob=1.0)])))),
        test_dataloader=dict(batch_size=1, dataset=dict(
            **dataset, test_mode=True, pipeline=test_pipeline or _pipeline()))))
    path = str(tmp_path / 'cfg.py')
    cfg.dump(path)
    return path


def _checkpoint(tmp_path, model_cfg):
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    path = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    model.eval()
    return path, model


def _expected_features(model, paths):
    """CLS features computed without the tool: imrescale, BGR->RGB, normalise, encode."""
    feats = []
    with torch.no_grad():
        for path in paths:
            img = mmcv.imrescale(mmcv.imread(path), SCALE)[..., ::-1]
            x = (torch.from_numpy(img.copy()).permute(2, 0, 1).float()
                 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
            feats.append(model.extract_cls_features(x[None].float()).double().numpy()[0])
    return np.stack(feats)


def test_fit_gmm_selects_normal_images_and_writes_the_prior(mixed_json, tmp_path):
    ann_file, paths = mixed_json
    cfg_path = _config(tmp_path, ann_file)
    model_cfg = Config.fromfile(cfg_path).model
    model_cfg.loss_gmm = None
    ckpt, model = _checkpoint(tmp_path, model_cfg)
    out = str(tmp_path / 'gmm.pth')
    record = fit_gmm.main([cfg_path, ckpt, '--out', out, '--num-samples', '4', '--seed', '0',
                           '--device', 'cpu'])

    sel = record['selection']
    # KITTI frames are normal; the LLVIP night frames are too dark
    stats = np.array([image_statistics(mmcv.imread(p)) for p in paths])
    assert (stats[:6, 0] >= 0.3).all() and (stats[:6, 1] > 0.4).all()
    assert (stats[6:, 0] < 0.3).all()
    assert sel['num_images'] == 12 and sel['num_normal'] == 6
    assert sel['rejected']['too_dark'] == 6 and sel['rejected']['too_bright'] == 0
    # brightness bins [0.3, 0.4): 5 frames, [0.4, 0.5): 1 (000001): water-filled shares 3 + 1
    per_bin = [(b['candidates'], b['selected']) for b in sel['bins']]
    assert per_bin == [(5, 3), (1, 1), (0, 0), (0, 0)]
    assert sel['num_selected'] == 4 == len(record['selected_images'])
    assert all('kitti' in p for p in record['selected_images'])
    assert osp.join(DATA, 'kitti', 'training', 'image_2', '000001.png') in \
        record['selected_images']
    np.testing.assert_allclose(
        [sel['all']['brightness']['min'], sel['all']['brightness']['max']],
        [stats[:, 0].min(), stats[:, 0].max()], rtol=1e-9)

    # K capped at the 4 samples; BIC decides
    assert record['k_selection']['capped'] and record['k_selection']['k_max_used'] == 4
    assert sorted(record['bic']) == [2, 3, 4]
    assert record['chosen_k'] == min(record['bic'], key=record['bic'].get)

    prior = GaussianMixturePrior.from_file(out)
    assert prior.num_components == record['chosen_k'] and prior.feature_dim == 32
    saved = torch.load(out, weights_only=True)
    assert saved['config'] == osp.abspath(cfg_path) and saved['checkpoint'] == ckpt
    # the mixture is the one scikit-learn fits on the selected images' CLS features
    feats = _expected_features(model, record['selected_images'])
    ref = GaussianMixture(record['chosen_k'], covariance_type='diag', init_params='k-means++',
                          max_iter=100, tol=1e-4, random_state=0).fit(feats)
    np.testing.assert_allclose(prior.means.numpy(), ref.means_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(prior.log_prob(torch.from_numpy(feats)).numpy(),
                               ref.score_samples(feats), atol=1e-3)

    # without --num-samples every normal image is used; the stratified draw is seeded
    again = fit_gmm.main([cfg_path, ckpt, '--out', str(tmp_path / 'all.pth'), '--k-range',
                          '1', '2'])
    assert again['selection']['num_selected'] == 6 and not again['k_selection']['capped']
    assert fit_gmm.main([cfg_path, ckpt, '--out', str(tmp_path / 'b.pth'), '--num-samples',
                         '4'])['selected_images'] == record['selected_images']


def test_fit_gmm_errors(mixed_json, tmp_path):
    ann_file, _ = mixed_json
    cfg_path = _config(tmp_path, ann_file)
    model_cfg = Config.fromfile(cfg_path).model
    model_cfg.loss_gmm = None
    ckpt, _ = _checkpoint(tmp_path, model_cfg)
    out = str(tmp_path / 'gmm.pth')
    with pytest.raises(RuntimeError, match=r'only 0 of 12 train images are normal'):
        fit_gmm.main([cfg_path, ckpt, '--out', out, '--min-contrast', '0.95'])
    assert not osp.exists(out)
    bad_model = _config(tmp_path, ann_file, model=dict(type='NoClsModel'))
    with pytest.raises(TypeError, match='extract_cls_features'):
        fit_gmm.main([bad_model, ckpt, '--out', out])
    degraded = _config(tmp_path, ann_file, test_pipeline=_pipeline(
        [dict(type='RGBDegradation', kind='fog', severity=2, seed=0)]))
    with pytest.raises(ValueError, match='clean images'):
        fit_gmm.main([degraded, ckpt, '--out', out])


def test_fit_gmm_degraded_prior(mixed_json, tmp_path):
    """--degradation (P_degraded): the same selected images, features of their degraded form."""
    from mmfusion.datasets.transforms.degradations import RGBDegradation
    ann_file, _ = mixed_json
    cfg_path = _config(tmp_path, ann_file)
    model_cfg = Config.fromfile(cfg_path).model
    model_cfg.loss_gmm = None
    ckpt, model = _checkpoint(tmp_path, model_cfg)
    clean = fit_gmm.main([cfg_path, ckpt, '--out', str(tmp_path / 'normal.pth'),
                          '--k-range', '1', '1', '--seed', '0'])
    out = str(tmp_path / 'degraded.pth')
    record = fit_gmm.main([cfg_path, ckpt, '--out', out, '--k-range', '1', '1', '--seed', '0',
                           '--degradation', 'overexposure', '4'])
    assert record['degradation'] == dict(kind='overexposure', severity=4.0)
    assert clean['degradation'] is None
    assert record['selected_images'] == clean['selected_images']
    # K=1: the mixture mean is the mean CLS feature of the over-exposed selected images
    degrade = RGBDegradation(kind='overexposure', severity=4.0, seed=0)
    feats = []
    with torch.no_grad():
        for path in record['selected_images']:
            img = degrade(dict(img=mmcv.imread(path), img_path=path))['img']
            img = mmcv.imrescale(img, SCALE)[..., ::-1]
            x = (torch.from_numpy(img.copy()).permute(2, 0, 1).float()
                 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
            feats.append(model.extract_cls_features(x[None]).double().numpy()[0])
    np.testing.assert_allclose(GaussianMixturePrior.from_file(out).means.numpy()[0],
                               np.mean(feats, 0), rtol=1e-4, atol=1e-5)
    assert not np.allclose(GaussianMixturePrior.from_file(out).means.numpy(),
                           GaussianMixturePrior.from_file(
                               str(tmp_path / 'normal.pth')).means.numpy(), atol=1e-3)


def test_fit_gmm_with_the_damf_detector(mixed_json, tmp_path):
    """The real DAMFDetector (tiny stage-0 config of projects/DAMF) through the tool."""
    ann_file, _ = mixed_json
    cfg_file = osp.join(REPO, 'projects', 'DAMF', 'configs',
                        'damf-stage0_vit-tiny-detr_1xb2-300e_llvip-sample.py')
    cfg = Config.fromfile(cfg_file)
    options = {}
    for split in ('train', 'test'):
        options.update({f'{split}_dataloader.dataset.ann_file': ann_file,
                        f'{split}_dataloader.dataset.data_root': DATA,
                        f'{split}_dataloader.dataset.data_prefix.img': '',
                        f'{split}_dataloader.dataset.data_prefix.img_ir': ''})
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'damf_stage0.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'gmm.pth')
    record = fit_gmm.main([cfg_file, ckpt, '--out', out, '--k-range', '2', '3', '--cfg-options']
                          + [f'{k}={v}' for k, v in options.items()])
    assert record['selection']['num_selected'] == 6
    prior = GaussianMixturePrior.from_file(out)
    assert prior.feature_dim == cfg.model.backbone.embed_dims
    # the stage-2 loss reads the file and scores the detector's CLS features
    loss = MODELS.build(dict(type='GMMNegLogLikelihoodLoss', gmm_file=out))
    model.eval()
    with torch.no_grad():
        x = torch.randn(2, 3, 208, 256)
        value = loss(model.extract_cls_features(x))
    assert torch.isfinite(value)
