"""FID / KID / IS: the statistics are right, agree with torchmetrics, and behave as a metric should."""

import numpy as np
import pytest
import torch
from scipy import linalg

from ldlib.data import shapes_dataset
from ldlib.evaluation import metrics
from ldlib.pyramid import downsample


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The textbook formula, ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017): the reference
    that ldlib's faster ``metrics.frechet_distance_to`` is checked against."""
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        eps = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# The TF-Inception network runs at ~6 images/s on two CPU cores: the sets here are kept small.
N = 24


@pytest.fixture(scope="module")
def real():
    return shapes_dataset(N, 64, seed=0).images


@pytest.fixture(scope="module")
def real_features(real):
    return metrics.extract(metrics.inception(), real)


def test_frechet_distance_gaussians():
    rng = np.random.default_rng(0)
    mu, cov = rng.normal(size=4), np.eye(4)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-9)
    # closed form for commuting covariances: ||dmu||^2 + sum (sqrt(a) - sqrt(b))^2
    assert frechet_distance(mu, 4 * cov, mu + 1, cov) == pytest.approx(4 + 4 * 1.0, rel=1e-9)


@pytest.mark.parametrize("n", [5, 40])
def test_fast_frechet_matches_sqrtm(n):
    rng = np.random.default_rng(n)
    real, fake = rng.normal(size=(50, 12)), rng.normal(size=(n, 12)) * 1.3 + 0.2
    mu, sig = metrics.gaussian_stats(real)
    slow = frechet_distance(mu, sig, *metrics.gaussian_stats(fake))
    assert metrics.frechet_distance_to(mu, sig, fake) == pytest.approx(slow, rel=1e-6)


@pytest.mark.parametrize("n", [3, 30, 80])  # 80 > d: the fast path steps aside for the rows' own
def test_resampled_fid_at_indices_equals_fid_of_the_resampled_rows(n):
    rng = np.random.default_rng(n)
    real, a = rng.normal(size=(200, 40)), rng.normal(size=(n, 40)) * 1.2 + 0.3
    b = a + rng.normal(size=a.shape)
    fid = metrics.resampled_statistic("fid", real, n)
    for _ in range(3):  # two sets in turn, as a paired bootstrap asks: each keeps its own Gram matrix
        i = rng.integers(0, n, n)
        for rows in (a, b):
            assert fid.at(rows, i) == pytest.approx(metrics.frechet_distance_to(fid.mu, fid.sigma, rows[i]), rel=1e-8)
    slow = lambda rows: fid(rows)  # noqa: E731  (no fast path: every resample from its rows)
    (d, ci, sd), (d0, ci0, sd0) = metrics.paired_bootstrap(fid, a, b, 20), metrics.paired_bootstrap(slow, a, b, 20)
    assert (d, *ci, sd) == pytest.approx((d0, *ci0, sd0), rel=1e-7)


def test_fid_zero_on_itself_and_monotone_in_corruption(real, real_features):
    assert metrics.fid_from_features(real_features, real_features) == pytest.approx(0, abs=1e-3)
    g = torch.Generator().manual_seed(0)
    x = real.float() / 127.5 - 1
    noisy = [metrics.fid_from_features(real_features, metrics.extract(metrics.inception(), x + s * torch.randn(x.shape, generator=g)))
             for s in (0.05, 0.2, 0.5)]
    blurred = [metrics.fid_from_features(real_features, metrics.extract(metrics.inception(), downsample(downsample(x, r), 64)))
               for r in (32, 16, 8)]
    assert 0 < noisy[0] < noisy[1] < noisy[2]
    assert 0 < blurred[0] < blurred[1] < blurred[2]


def test_matches_torchmetrics(real, real_features):
    from torchmetrics.image.fid import FrechetInceptionDistance

    fake = shapes_dataset(N, 64, seed=1).images
    fid = FrechetInceptionDistance(feature=metrics.inception())
    fid.update(real, real=True)
    fid.update(fake, real=False)
    ours = metrics.fid_from_features(real_features, metrics.extract(metrics.inception(), fake))
    assert ours == pytest.approx(fid.compute().item(), rel=1e-3)


def test_kid_and_is_behave(real_features):
    kid_same, _ = metrics.kid_from_features(real_features, real_features, subsets=5, subset_size=N)
    shifted = real_features + 0.5
    kid_far, _ = metrics.kid_from_features(real_features, shifted, subsets=5, subset_size=N)
    assert abs(kid_same) < kid_far / 5
    uniform = np.zeros((100, 1000))
    assert metrics.inception_score_from_logits(uniform, 1)[0] == pytest.approx(1.0)
    peaked = np.full((100, 1000), -20.0)
    peaked[np.arange(100), np.arange(100)] = 20.0
    assert metrics.inception_score_from_logits(peaked, 1)[0] == pytest.approx(100, rel=0.01)


def test_classifier_recognises_a_photo():
    from ldlib.data import example_images

    cat = metrics.to_uint8(example_images(["chelsea"], 224))
    logits = metrics.classifier()(cat)
    assert 281 <= int(logits.argmax()) <= 287  # ImageNet's domestic cats


def test_evaluate_reports_intervals(real, real_features):
    fake = shapes_dataset(N, 64, seed=2).images
    p = metrics.Protocol(reference="shapes seed 0", n_reference=len(real), n_generated=len(fake))
    s = metrics.evaluate(real, fake, p, n_boot=5, real_features=real_features)
    assert s.fid_ci[0] < s.fid < s.fid_ci[1] and s.is_ci[0] < s.inception_score < s.is_ci[1]
    assert s.inception_score >= 1 and s.protocol.as_dict()["n_generated"] == N


def test_corruptions_and_split_half_floor(real, real_features):
    assert torch.equal(metrics.corrupt(real, "noise", 0.0), real)
    assert (metrics.corrupt(real, "noise", 0.3).float() - real.float()).abs().mean() > 10
    blurred = metrics.corrupt(real, "blur", 4.0)
    assert blurred.shape == real.shape and blurred.dtype == torch.uint8
    with pytest.raises(ValueError, match="noise or blur"):
        metrics.corrupt(real, "jpeg", 1.0)
    a, b = metrics.split_halves(N, seed=1)
    assert len(set(a) | set(b)) == N and not set(a) & set(b)
    fid, kid = metrics.half_split_floor(real_features, seed=1)
    assert fid > 0 and np.isfinite(kid)
