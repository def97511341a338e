"""D(x0, i), strategic cropping (section 3.1) and the forward process of eq. (3)."""


import pytest
import torch

from ldlib.crop import CropBox, random_crop_box
from ldlib.forward import diffuse
from ldlib.noise import noise_pyramid
from ldlib.pyramid import downsample, image_pyramid
from ldlib.schedules import LayeredSchedule


def test_pyramid_shapes_constants_and_means(gen):
    x = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    levels = image_pyramid(x, [16, 32, 64])
    assert [l.shape for l in levels] == [(2, 3, 16, 16), (2, 3, 32, 32), (2, 3, 64, 64)]
    assert levels[-1] is x
    const = torch.full((1, 3, 64, 64), 0.3)
    assert torch.allclose(image_pyramid(const, [16, 64])[0], torch.full((1, 3, 16, 16), 0.3))
    assert torch.allclose(levels[0].mean(), x.mean(), atol=1e-2)


def test_pyramid_bad_inputs():
    with pytest.raises(ValueError, match="must be 64x64"):
        image_pyramid(torch.zeros(1, 3, 32, 32), [16, 64])
    with pytest.raises(ValueError, match="strictly increasing"):
        image_pyramid(torch.zeros(1, 3, 64, 64), [64, 16])
    with pytest.raises(ValueError, match="do not divide"):
        image_pyramid(torch.zeros(1, 3, 64, 64), [24, 64])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        downsample(torch.zeros(3, 64, 64), 32)


def test_crop_box_scaling_roundtrip():
    box = CropBox(8, 4, 16, 32)
    assert box.at(128) == CropBox(32, 16, 64, 128)
    assert box.at(128).at(32) == box
    with pytest.raises(ValueError, match="not on the"):
        CropBox(3, 0, 16, 32).at(16)
    with pytest.raises(ValueError, match="does not fit"):
        CropBox(20, 0, 16, 32)
    with pytest.raises(ValueError, match="not a multiple"):
        box.at(48)


def test_random_crop_box_seeded_in_bounds_on_grid():
    boxes = [random_crop_box(128, 64, torch.Generator().manual_seed(s), grid=2) for s in range(50)]
    assert all(0 <= b.top <= 64 and 0 <= b.left <= 64 and b.top % 2 == 0 for b in boxes)
    assert len({(b.top, b.left) for b in boxes}) > 10
    again = random_crop_box(128, 64, torch.Generator().manual_seed(3), grid=2)
    assert again == boxes[3]
    with pytest.raises(ValueError):
        random_crop_box(64, 128)


@pytest.mark.parametrize("factor", [2, 4])
def test_crop_consistent_with_pyramid(gen, factor):
    """Downsampled-then-cropped equals cropped-then-downsampled, except one base pixel at the border."""
    top = 32 * factor
    x = torch.rand(2, 3, top, top, generator=gen, dtype=torch.float64)
    for seed in range(5):
        box = random_crop_box(32, 16, torch.Generator().manual_seed(seed))
        a = box.apply(downsample(x, 32))
        b = downsample(box.apply(x), 16)
        assert torch.allclose(a[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1], atol=1e-12)
        cropped = [box.apply(level) for level in image_pyramid(x, [32, top])]
        assert [c.shape[-1] for c in cropped] == [16, 16 * factor]
        assert torch.equal(cropped[1], box.apply(x))


def test_diffuse_matches_eq3_and_extremes(gen):
    x0 = torch.rand(4, 3, 64, 64, generator=gen) * 2 - 1
    eps0 = torch.randn(x0.shape, generator=gen)
    sch = LayeredSchedule.paper([16, 32, 64])
    t = torch.tensor([0.0, 0.3, 0.7, 1.0])
    z, targets, noises = diffuse(x0, eps0, t, sch)
    assert torch.equal(noises[-1], eps0)
    expected = noise_pyramid(eps0, [16, 32, 64])
    for zi, xi, ei, e_ref, (a, s) in zip(z, targets, noises, expected, sch.alpha_sigma(t)):
        assert torch.allclose(ei, e_ref)
        assert torch.allclose(zi, a.view(-1, 1, 1, 1) * xi + s.view(-1, 1, 1, 1) * ei, atol=1e-6)
    # t = 0 is (nearly) clean, t = 1 (nearly) pure noise at every level: log-SNR is clipped at +-15 + shift
    for zi, xi, ei in zip(z, targets, noises):
        assert (zi[0] - xi[0]).abs().max() < 0.02
        assert (zi[3] - ei[3]).abs().max() < 2e-3


def test_diffuse_noise_level_follows_schedule(gen):
    """The empirical noise variance of each level's input equals sigma_i^2 of its own shifted schedule."""
    x0 = torch.zeros(256, 1, 32, 32)
    eps0 = torch.randn(x0.shape, generator=gen)
    sch = LayeredSchedule.paper([8, 16, 32])
    z, _, _ = diffuse(x0, eps0, 0.4, sch)
    for zi, (_, s) in zip(z, sch.alpha_sigma(torch.tensor(0.4))):
        assert zi.var().item() == pytest.approx(s.item() ** 2, rel=0.05)
    with pytest.raises(ValueError, match="shape of x0"):
        diffuse(x0, eps0[:, :, :16, :16], 0.4, sch)
