"""Section 2.1: the layered U-Net's structure, conditioning and cropping path."""

import pytest
import torch

from ldlib.config import UNetConfig, model_config
from ldlib.crop import nested_crop_boxes
from ldlib.data.text import HashTextEncoder
from ldlib.network import LayeredUNet, build_model


def inputs(cfg, b=2, sizes=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = sizes or cfg.resolutions
    z = [torch.randn(b, 3, r, r, generator=g) for r in sizes]
    text = HashTextEncoder().encode(["a red circle", "a small blue striped square above a green triangle"][:b])
    return z, torch.rand(b, generator=g), text


def jittered(cfg, scale=0.02):
    """A model whose zero-initialised output layers are made non-trivial, so every path carries signal."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    for p in model.parameters():
        p.data.add_(scale * torch.randn_like(p))
    return model


def run(model, z, t, text, **kw):
    return model(z, t, text.tokens, text.mask, text.pooled, **kw)


@pytest.mark.parametrize("levels, single", [(1, False), (2, False), (3, False), (2, True), (3, True)])
def test_shapes_and_same_class(levels, single):
    cfg = model_config("smoke", levels, single)
    model = build_model(cfg)
    assert type(model) is LayeredUNet
    z, t, text = inputs(cfg)
    out = run(model, z, t, text)
    assert [o.shape for o in out] == [zi.shape for zi in z]
    assert all(torch.isfinite(o).all() for o in out)


def test_isolated_downsampling():
    """The base output never depends on the higher-resolution inputs; the top output depends on all."""
    cfg = model_config("smoke", 3)
    model = jittered(cfg, 0.01)
    z, t, text = inputs(cfg)
    z = [v.requires_grad_(True) for v in z]
    out = run(model, z, t, text)
    grads = torch.autograd.grad(out[0].sum(), z, allow_unused=True, retain_graph=True)
    assert grads[0] is not None and grads[0].abs().sum() > 0
    assert all(g is None or g.abs().sum() == 0 for g in grads[1:])
    top = torch.autograd.grad(out[2].sum(), z)
    assert all(g.abs().sum() > 0 for g in top)


def test_text_conditioning_and_dropout_path():
    cfg = model_config("smoke", 2)
    model = jittered(cfg)
    z, t, text = inputs(cfg)
    a = run(model, z, t, text)[-1]
    other = HashTextEncoder().encode(["a purple triangle", "a yellow square"])
    b = run(model, z, t, other)[-1]
    assert (a - b).abs().max() > 1e-4  # captions matter
    keep = torch.zeros(2, dtype=torch.bool)
    c = run(model, z, t, text, keep_text=keep)[-1]
    d = run(model, z, t, other, keep_text=keep)[-1]
    assert torch.allclose(c, d, atol=1e-6)  # a dropped caption is ignored entirely


def test_cropped_path_matches_uncropped_inside():
    """Strategic cropping (section 3.1): the base output is unchanged and each cropped output equals the
    uncropped model's output on the covered region, away from the crop border (receptive field).

    GroupNorm normalises with statistics of the whole (cropped) feature map, so a cropped pass can only
    approximate the full one; to pin the cropping geometry exactly we swap the norms for identities."""
    cfg = UNetConfig((32, 64, 128), (16, 32), (1, 1), (16, 8), (1, 0), (1,), head_channels=16)
    model = build_model(cfg).eval()
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.GroupNorm):
                setattr(module, child_name, torch.nn.Identity())
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    z, t, text = inputs(cfg)
    full = run(model, z, t, text)
    crops = nested_crop_boxes(cfg.resolutions, 48, torch.Generator().manual_seed(3))
    zc = [c.apply(v) if c is not None else v for c, v in zip(crops, z)]
    part = run(model, zc, t, text, crops=crops)
    assert torch.allclose(part[0], full[0], atol=1e-5)
    # pixels near a crop edge see zero padding instead of neighbours; the margin doubles with each level
    for level, m in ((1, 6), (2, 18)):
        ref = crops[level].apply(full[level])
        assert part[level].shape == ref.shape
        diff = (part[level] - ref).abs()
        assert diff[..., m:-m, m:-m].max() < 1e-4
        assert diff.max() > 1e-4  # the border does differ: the test would notice a cropping bug


def test_config_validation():
    with pytest.raises(ValueError, match="double"):
        UNetConfig((16, 48), (32,), (1,), (16,), (0,))
    with pytest.raises(ValueError, match="layer_widths"):
        UNetConfig((16, 32), (32,), (1,))
    with pytest.raises(ValueError, match="multiples of 8"):
        UNetConfig((16,), (30,), (1,))
    with pytest.raises(ValueError, match="halved"):
        UNetConfig((10,), (32, 32, 32), (1, 1, 1))
    with pytest.raises(ValueError, match="unknown preset"):
        model_config("huge")
