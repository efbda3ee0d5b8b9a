"""DAMF's Gaussian-mixture prior, its NLL loss and the BIC fit, on real CLS features.

Features: CLS tokens of a ViT-B-width (768) mmseg VisionTransformer (2 layers, seeded
initialisation: no pretrained weights can be downloaded here) on the real images bundled in
tests/data: 6 KITTI frames, 6 LLVIP visible frames, and LLVIP/KITTI frames degraded by fog and
night (held-out points far from the fitted data).
"""
import glob
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmseg.models.backbones import VisionTransformer
from sklearn.mixture import GaussianMixture

import mmfusion.det  # noqa: F401  (registers the loss, as custom_imports does)
from mmfusion.datasets.transforms.degradations import degrade
from mmfusion.models.losses.gmm_fitting import fit_gmm_by_bic
from mmfusion.models.losses.gmm_nll_loss import GaussianMixturePrior, GMMNegLogLikelihoodLoss

pytestmark = pytest.mark.default_scope('mmdet')

DATA = osp.join(osp.dirname(osp.dirname(__file__)), 'data')
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


def _images():
    kitti = sorted(glob.glob(osp.join(DATA, 'kitti', 'training', 'image_2', '*.png')))
    llvip = sorted(glob.glob(osp.join(DATA, 'llvip', 'LLVIP', 'visible', '*', '*.jpg')))
    assert len(kitti) == 6 and len(llvip) == 6
    return [mmcv.imresize(mmcv.imread(p), (224, 224)) for p in kitti + llvip]


def _batch(images):
    """BGR uint8 (224, 224, 3) images -> (N, 3, 224, 224) RGB normalised tensor."""
    out = [(img[..., ::-1] - MEAN) / STD for img in images]
    return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2)).float()


@pytest.fixture(scope='module')
def features():
    """``(fit, held_out)``: (12, 768) clean and (12, 768) fog/night float64 CLS features."""
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=224, patch_size=16, embed_dims=768, num_layers=2,
                            num_heads=12, with_cls_token=True, output_cls_token=True,
                            final_norm=True)
    vit.init_weights()
    vit.eval()
    clean = _images()
    rng = np.random.default_rng(0)
    degraded = [degrade(img, 'fog' if i % 2 else 'night', 4, rng)
                for i, img in enumerate(clean)]
    with torch.no_grad():
        fit = vit(_batch(clean))[-1][1].double().numpy()
        held_out = vit(_batch(degraded))[-1][1].double().numpy()
    return fit, held_out


def _gmm(fit, k):
    return GaussianMixture(n_components=k, covariance_type='diag', init_params='k-means++',
                           max_iter=100, tol=1e-4, random_state=0).fit(fit)


@pytest.mark.parametrize('k', [1, 3])
def test_log_prob_matches_sklearn_on_real_features(features, k):
    fit, held_out = features
    gmm = _gmm(fit, k)
    prior = GaussianMixturePrior.from_sklearn(gmm)
    x = np.concatenate([fit, held_out])
    ours = prior.log_prob(torch.from_numpy(x)).numpy()
    ref = gmm.score_samples(x)
    assert ours.dtype == np.float64 and ours.shape == (24, )
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)
    # the held-out degraded features are less likely than the fitted clean ones
    assert np.median(ours[12:]) < np.median(ours[:12])
    # float32 input (as the model gives) is promoted: same values
    # (scikit-learn computes float32 input in float32, losing ~1e-2 here: compare with the
    # float32 values given to it in float64)
    x32 = x.astype(np.float32)
    ours32 = prior.log_prob(torch.from_numpy(x32)).numpy()
    np.testing.assert_allclose(ours32, gmm.score_samples(x32.astype(np.float64)), atol=1e-4)


def test_log_prob_matches_torch_distributions(features):
    fit, held_out = features
    prior = GaussianMixturePrior.from_sklearn(_gmm(fit, 3))
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=prior.weights),
        torch.distributions.Independent(
            torch.distributions.Normal(prior.means, prior.covariances.sqrt()), 1))
    x = torch.from_numpy(np.concatenate([fit, held_out]))
    torch.testing.assert_close(prior.log_prob(x), mixture.log_prob(x), rtol=1e-10, atol=1e-6)
    # any leading shape
    assert prior.log_prob(x.view(4, 6, -1)).shape == (4, 6)


def test_gradient_is_the_responsibility_weighted_score(features):
    fit, held_out = features
    gmm = _gmm(fit, 3)
    prior = GaussianMixturePrior.from_sklearn(gmm)
    x = torch.from_numpy(np.concatenate([fit[:4], held_out[:4]])).requires_grad_()
    prior.log_prob(x).sum().backward()
    resp = gmm.predict_proba(x.detach().numpy())  # (B, K)
    score = -(x.detach().numpy()[:, None] - gmm.means_) / gmm.covariances_  # (B, K, d)
    expected = (resp[..., None] * score).sum(1)
    atol = 1e-8 * np.abs(expected).max()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-8, atol=atol)
    small = GaussianMixturePrior(torch.tensor([0.3, 0.7]), torch.randn(2, 5),
                                 torch.rand(2, 5) + 0.5)
    point = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(small.log_prob, (point, ))


def test_save_and_from_file_round_trip(features, tmp_path):
    fit, _ = features
    prior = GaussianMixturePrior.from_sklearn(_gmm(fit, 3))
    path = str(tmp_path / 'sub' / 'gmm.pth')
    prior.save(path, chosen_k=3, bic={2: 1.5, 3: 1.0}, config='x.py')
    data = torch.load(path, weights_only=True)
    assert data['format'] == 'mmfusion.gmm_prior' and data['n_components'] == 3
    assert data['feature_dim'] == 768 and data['bic'] == {2: 1.5, 3: 1.0}
    loaded = GaussianMixturePrior.from_file(path)
    for name in ('weights', 'means', 'covariances'):
        assert torch.equal(getattr(loaded, name), getattr(prior, name))
    assert loaded.source == path
    with pytest.raises(ValueError, match='reserved'):
        prior.save(path, weights=1)


def test_loss_value_reduction_and_registry(features, tmp_path):
    from mmdet.registry import MODELS
    fit, held_out = features
    gmm = _gmm(fit, 3)
    path = str(tmp_path / 'gmm.pth')
    GaussianMixturePrior.from_sklearn(gmm).save(path)
    loss = MODELS.build(dict(type='GMMNegLogLikelihoodLoss', gmm_file=path, loss_weight=0.5))
    assert isinstance(loss, GMMNegLogLikelihoodLoss)
    x = torch.from_numpy(held_out[:5]).float()
    nll = -gmm.score_samples(held_out[:5].astype(np.float32))
    value = loss(x)
    assert value.dtype == torch.float32 and value.dim() == 0
    np.testing.assert_allclose(value.item(), 0.5 * nll.mean(), rtol=1e-6)
    np.testing.assert_allclose(loss(x, reduction_override='sum').item(), 0.5 * nll.sum(),
                               rtol=1e-6)
    np.testing.assert_allclose(loss(x, reduction_override='none').numpy(), 0.5 * nll,
                               rtol=1e-6)
    w = torch.tensor([1., 0., 2., 0., 1.])
    np.testing.assert_allclose(loss(x, weight=w, avg_factor=4.).item(),
                               0.5 * (nll * w.numpy()).sum() / 4, rtol=1e-6)
    # gradient descent on the features lowers the loss (pulls them to the normal mixture)
    x = x.clone().requires_grad_()
    opt = torch.optim.SGD([x], lr=1e-3)
    before = loss(x).item()
    for _ in range(5):
        opt.zero_grad()
        loss(x).backward()
        opt.step()
    assert loss(x).item() < before


def test_prior_travels_in_the_state_dict(features, tmp_path):
    fit, _ = features
    a, b = str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth')
    GaussianMixturePrior.from_sklearn(_gmm(fit, 3)).save(a)
    GaussianMixturePrior.from_sklearn(_gmm(fit, 1)).save(b)
    loss_a = GMMNegLogLikelihoodLoss(gmm_file=a)
    assert set(loss_a.state_dict()) == {'prior.weights', 'prior.means', 'prior.covariances'}
    assert all(not p.requires_grad for p in loss_a.parameters())
    # another K cannot be loaded silently
    with pytest.raises(RuntimeError, match='size mismatch'):
        GMMNegLogLikelihoodLoss(gmm_file=a).load_state_dict(
            GMMNegLogLikelihoodLoss(gmm_file=b).state_dict())
    # same K: loading replaces the mixture
    loss_c = GMMNegLogLikelihoodLoss(gmm_file=a)
    state = loss_a.state_dict()
    state['prior.means'] = state['prior.means'] + 1.0
    loss_c.load_state_dict(state)
    assert torch.equal(loss_c.prior.means, loss_a.prior.means + 1.0)


def test_errors_name_the_file(features, tmp_path):
    fit, _ = features
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        GMMNegLogLikelihoodLoss(gmm_file=missing)
    text = tmp_path / 'text.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(ValueError, match='text.pth'):
        GaussianMixturePrior.from_file(str(text))
    no_keys = str(tmp_path / 'no_keys.pth')
    torch.save(dict(weights=torch.ones(1)), no_keys)
    with pytest.raises(ValueError, match=r"no_keys.pth.*missing \['means', 'covariances'\]"):
        GaussianMixturePrior.from_file(no_keys)
    bad_shape = str(tmp_path / 'bad_shape.pth')
    torch.save(dict(weights=torch.ones(2) / 2, means=torch.zeros(2, 4),
                    covariances=torch.ones(3, 4)), bad_shape)
    with pytest.raises(ValueError, match='bad_shape.pth'):
        GaussianMixturePrior.from_file(bad_shape)
    full = str(tmp_path / 'full.pth')
    torch.save(dict(weights=torch.ones(1), means=torch.zeros(1, 2), covariances=torch.ones(1, 2),
                    covariance_type='full'), full)
    with pytest.raises(ValueError, match='full.pth.*diag'):
        GaussianMixturePrior.from_file(full)

    good = str(tmp_path / 'good.pth')
    GaussianMixturePrior.from_sklearn(_gmm(fit, 1)).save(good)
    loss = GMMNegLogLikelihoodLoss(gmm_file=good)
    with pytest.raises(ValueError, match=r'dimension 256.*good.pth.*768'):
        loss(torch.zeros(2, 256))
    with pytest.raises(RuntimeError, match='fit_gmm'):
        GMMNegLogLikelihoodLoss(gmm_file=None)(torch.zeros(2, 768))
    with pytest.raises(ValueError, match="covariance_type='diag'"):
        GaussianMixturePrior.from_sklearn(
            GaussianMixture(2, covariance_type='full', random_state=0).fit(fit[:, :4]))
    with pytest.raises(ValueError, match='sum to'):
        GaussianMixturePrior(torch.tensor([0.5, 0.6]), torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match='positive'):
        GaussianMixturePrior(torch.tensor([0.5, 0.5]), torch.zeros(2, 3), torch.zeros(2, 3))


def test_fit_by_bic_finds_the_number_of_clusters(features):
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 6))
    data = np.concatenate([c + rng.normal(0, 0.5, (80, 6)) for c in centres])
    gmm, bic, info = fit_gmm_by_bic(data, (1, 6), seed=0)
    assert info['chosen_k'] == 3 == gmm.n_components
    assert sorted(bic) == [1, 2, 3, 4, 5, 6] and min(bic, key=bic.get) == 3
    assert not info['capped'] and info['num_samples'] == 240 and info['feature_dim'] == 6
    # same seed, same mixture
    again, _, _ = fit_gmm_by_bic(data, (1, 6), seed=0)
    np.testing.assert_array_equal(gmm.means_, again.means_)

    # few real samples: K is capped at N
    fit, _ = features
    gmm, bic, info = fit_gmm_by_bic(fit[:5], (2, 16), seed=0)
    assert info['capped'] and info['k_max_used'] == 5 and sorted(bic) == [2, 3, 4, 5]
    with pytest.raises(ValueError, match='N >= 2'):
        fit_gmm_by_bic(fit[:1], (1, 2))
    with pytest.raises(ValueError, match='k_range'):
        fit_gmm_by_bic(fit, (3, 2))
    with pytest.raises(ValueError, match='exceeds'):
        fit_gmm_by_bic(fit[:3], (4, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu(features, tmp_path):
    fit, held_out = features
    path = str(tmp_path / 'gmm.pth')
    GaussianMixturePrior.from_sklearn(_gmm(fit, 3)).save(path)
    loss = GMMNegLogLikelihoodLoss(gmm_file=path)
    x = torch.from_numpy(held_out).float()
    cpu = loss(x.clone().requires_grad_())
    x_cuda = x.cuda().requires_grad_()
    gpu = loss.cuda()(x_cuda)
    gpu.backward()
    assert x_cuda.grad.device.type == 'cuda' and torch.isfinite(x_cuda.grad).all()
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-6, atol=1e-4)
