"""Figures draw what they are given: a known image, as uint8 or as floats in [-1, 1], comes out with the same
pixels in every helper that shows images (the committed grids of an earlier commit showed uint8 samples as
blank squares)."""

import matplotlib

matplotlib.use("agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ldlib.data import to_display, to_float, to_uint8  # noqa: E402
from ldlib.reproduction import plots  # noqa: E402
from ldlib.schedules import LayeredSchedule  # noqa: E402


def known(n: int = 2, side: int = 16) -> torch.Tensor:
    """uint8 images: a red left half, a blue right half, and a mid-grey pixel at the top-left corner."""
    x = torch.zeros(n, 3, side, side, dtype=torch.uint8)
    x[:, 0, :, : side // 2] = 255
    x[:, 2, :, side // 2 :] = 255
    x[:, :, 0, 0] = 128
    return x


def shown(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array())


def check(pixels: np.ndarray, side: int = 16) -> None:
    assert pixels.shape == (side, side, 3)
    assert np.allclose(pixels[side // 2, 1], [1, 0, 0], atol=1e-6)  # red
    assert np.allclose(pixels[side // 2, -1], [0, 0, 1], atol=1e-6)  # blue
    assert np.allclose(pixels[0, 0], [128 / 255] * 3, atol=0.01)  # grey, not snapped to 0.5 or 1


@pytest.mark.parametrize("as_float", [False, True], ids=["uint8", "float"])
def test_to_display_reads_either_range(as_float):
    x = known()[0]
    check(to_display(to_float(x) if as_float else x))


def test_to_display_refuses_what_it_cannot_read():
    with pytest.raises(TypeError, match="uint8"):
        to_display(torch.zeros(3, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="one \\(3, H, W\\) image"):
        to_display(torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("as_float", [False, True], ids=["uint8", "float"])
def test_model_grid_shows_the_samples_pixels(as_float):
    images = known()
    fig = plots.model_grid({"a": to_float(images) if as_float else images, "b": images}, ["p", "q"], n=2)
    for ax in fig.axes:
        check(shown(ax))


def test_crop_pyramid_shows_the_images_pixels():
    fig = plots.crop_pyramid(known(1, 32), [16, 32], crop_size=8, generator=torch.Generator().manual_seed(0))
    check(shown(fig.axes[1]), side=32)  # the top level is the image itself


def test_noised_grid_shows_the_inputs_pixels():
    x = to_float(known(1))
    sch = LayeredSchedule.unshifted([8, 16])
    fig = plots.noised_grid({0.0: [x[:, :, ::2, ::2], x]}, [8, 16], sch)
    check(shown(fig.axes[1]))
    assert to_uint8(x).equal(known(1))


def test_budget_curves_draw_each_models_seed_mean_and_each_pairs_interval():
    points = {"single32": {100: [3.0, 4.0], 200: [2.0, 2.5]}, "layered32": {100: [2.5, 3.5], 200: [1.5, 2.0]}}
    diffs = {"layered32 - single32": {100: (-0.5, (-1.0, 0.0)), 200: (-0.5, (-0.7, -0.3))}}
    left, right = plots.budget_curves(points, diffs).axes
    means = [line.get_ydata().tolist() for line in left.get_lines()]
    assert [3.5, 2.25] in means and [3.0, 1.75] in means  # one line per model through its seeds' means
    assert sum(len(c.get_offsets()) for c in left.collections) == 8  # a dot per seed and budget
    bars = [c for c in right.collections if c.get_segments()]
    assert any(np.allclose([s[:, 1] for s in c.get_segments()], [[-1.0, 0.0], [-0.7, -0.3]]) for c in bars)


def test_budget_curves_draw_each_seeds_own_difference_beside_its_interval():
    points = {"single32": {100: [3.0, 4.0, 5.0]}, "layered32": {100: [2.5, 4.5, 4.0]}}
    diffs = {"layered32 - single32": {100: (-0.33, (-2.0, 1.3))}}
    right = plots.budget_curves(points, diffs, seed_differences={"layered32 - single32": {100: [-0.5, 0.5, -1.0]}}).axes[1]
    dots = [c.get_offsets() for c in right.collections if len(c.get_offsets()) == 3]
    assert len(dots) == 1 and sorted(dots[0][:, 1].tolist()) == [-1.0, -0.5, 0.5]
    assert np.all(dots[0][:, 0] > 100)  # beside the interval at x = 100, not on it
    assert "single seeds" in right.get_title()
    bare = plots.budget_curves(points, diffs).axes[1]
    assert not any(len(c.get_offsets()) == 3 for c in bare.collections) and "seeds" not in bare.get_title()


def test_budget_curves_draw_each_floor_in_its_resolutions_colour():
    points = {"single32": {100: [3.0], 200: [2.0]}, "single64": {100: [5.0], 200: [4.0]}}
    left = plots.budget_curves(points, {}, floors={64: 1.5, 32: 0.5}).axes[0]
    model = {line.get_label(): line.get_color() for line in left.get_lines()}
    floor = {line.get_label(): (line.get_ydata()[0], line.get_color()) for line in left.get_lines()
             if line.get_linestyle() == ":"}
    assert floor == {"real images @ 32px": (0.5, model["single32"]), "real images @ 64px": (1.5, model["single64"])}
    assert left.get_ylim()[0] < 0.5  # the axis reaches down to the floor


def test_budget_curves_keep_close_single_points_close():
    """One budget per arm at nearly the same x (equal wall time: 228 vs 232 s) must not fill the log axis."""
    points = {"full images": {228.0: [234.0]}, "crops of 16px": {232.0: [250.5]}}
    fig = plots.budget_curves(points, {"crops - full": {228.0: (16.6, (9.0, 24.1))}}, xlabel="training seconds")
    for axis in fig.axes:
        lo, hi = axis.get_xlim()
        assert lo < 228.0 and hi > 232.0 and hi / lo >= 4.0
    points = {"single32": {12800: [1.0], 102400: [0.5]}}  # a wide curve keeps its own range, padded
    lo, hi = plots.budget_curves(points, {"single32 - single32": {12800: (0.0, (-1.0, 1.0))}}).axes[0].get_xlim()
    assert 6000 < lo < 12800 and 102400 < hi < 220000


def test_reliance_by_rule_draws_a_panel_per_rule_with_each_rows_seed_means():
    from ldlib.reproduction.table1 import Reliance

    layered = [np.array([[1.0, 4.0], [1.0, 2.0]]), np.array([[3.0, 6.0], [3.0, 4.0]])]
    rows = {"layered32": Reliance("single32", 100, layered, [0.25, 0.75])}
    fig = plots.reliance_by_rule((0.3, 0.8), {"paper": rows, "none": rows})
    assert [ax.get_title() for ax in fig.axes] == ["schedule rule: paper", "schedule rule: none"]
    lines = {line.get_label(): line.get_ydata().tolist() for line in fig.axes[0].get_lines()}
    assert lines == {"layered32: as trained (training loss 0.50x single32's)": [2.0, 2.0],
                     "layered32: lower noise independent": [5.0, 3.0]}
    assert "mean of 2 seeds" in fig._suptitle.get_text()
