"""Configurations: the network, the diffusion process, and training, as frozen dataclasses, plus named presets.

Units are in the field names or docstrings: resolutions and widths in pixels/channels, shifts in nats of
log-SNR, learning rate per step, checkpoint intervals in optimizer steps.

Presets (``smoke``, ``cpu16``, ``cpu32``, ``paper``) each define a family of models over three resolutions;
:func:`model_config` picks the layered model with the first K of them, or the single-resolution baseline at
the same target resolution (K = 1 of the same class, with the same widths at every resolution, as in
Table 1: "where hidden dimension sizes are identical").
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .noise import NOISE_KINDS
from .schedules import LayeredSchedule


@dataclass(frozen=True)
class UNetConfig:
    """A layered U-Net (section 2.1). ``resolutions`` (pixels, base first, each twice the previous) are the
    K input/output resolutions. The base U-Net runs at ``resolutions[0]`` with one level per entry of
    ``base_widths`` (halving the resolution between levels) and ``base_blocks[l]`` residual blocks per
    encoder level (``+1`` on the decoder side, ADM style). Each higher resolution k has hidden width
    ``layer_widths[k-1]``, ``layer_enc_blocks[k-1]`` isolated encoder blocks (their features only reach the
    decoder as skips) and ``layer_enc_blocks[k-1] + 1`` decoder blocks. Base levels listed in
    ``attention_levels`` get self- plus cross-attention to the text tokens."""

    resolutions: tuple[int, ...]
    base_widths: tuple[int, ...]
    base_blocks: tuple[int, ...]
    layer_widths: tuple[int, ...] = ()
    layer_enc_blocks: tuple[int, ...] = ()
    attention_levels: tuple[int, ...] = ()
    mid_attention: bool = True
    head_channels: int = 64
    text_dim: int = 384
    image_channels: int = 3
    dropout: float = 0.0

    def __post_init__(self) -> None:
        res = self.resolutions
        if not res or any(b != 2 * a for a, b in zip(res, res[1:])):
            raise ValueError(f"resolutions must double from one to the next (base first), got {res}")
        if len(self.base_widths) != len(self.base_blocks) or not self.base_widths:
            raise ValueError("base_widths and base_blocks need one entry per base level")
        if res[0] % 2 ** (len(self.base_widths) - 1):
            raise ValueError(f"base resolution {res[0]} cannot be halved {len(self.base_widths) - 1} times")
        if len(self.layer_widths) != len(res) - 1 or len(self.layer_enc_blocks) != len(res) - 1:
            raise ValueError(f"{len(res)} resolutions need {len(res) - 1} layer_widths and layer_enc_blocks")
        if any(l >= len(self.base_widths) or l < 0 for l in self.attention_levels):
            raise ValueError(f"attention_levels {self.attention_levels} outside base levels 0..{len(self.base_widths) - 1}")
        widths = self.base_widths + self.layer_widths
        if any(w % 8 for w in widths):
            raise ValueError(f"all widths must be multiples of 8 (GroupNorm groups), got {widths}")

    @property
    def levels(self) -> int:
        """K, the number of input/output resolutions."""
        return len(self.resolutions)


@dataclass(frozen=True)
class DiffusionConfig:
    """The forward process and loss of eq. (3). ``shifts`` (nats, one per resolution) shift each
    resolution's cosine log-SNR; ``noise_kind`` derives the lower resolutions' noise from the top one
    (section 2.2); ``loss_weighting`` is the per-resolution weight w_i ("we scale loss with respect to
    resolution scale", section 2.1): ``uniform`` (1), ``resolution`` (r_i / r_top, the default), or
    ``area`` ((r_i / r_top)^2, i.e. a sum over pixels); ``time_weighting`` is w_t of eq. (2): ``none`` or
    ``min_snr`` (min(SNR, 5), Hang et al. 2023)."""

    resolutions: tuple[int, ...]
    shifts: tuple[float, ...]
    noise_kind: str = "sinc"
    loss_weighting: str = "resolution"
    time_weighting: str = "none"

    def __post_init__(self) -> None:
        if len(self.shifts) != len(self.resolutions):
            raise ValueError("one shift per resolution needed")
        if self.noise_kind not in NOISE_KINDS:
            raise ValueError(f"noise_kind must be one of {NOISE_KINDS}, got {self.noise_kind!r}")
        if self.loss_weighting not in ("uniform", "resolution", "area"):
            raise ValueError(f"loss_weighting must be uniform, resolution or area, got {self.loss_weighting!r}")
        if self.time_weighting not in ("none", "min_snr"):
            raise ValueError(f"time_weighting must be none or min_snr, got {self.time_weighting!r}")

    @classmethod
    def paper(cls, resolutions, **kw) -> "DiffusionConfig":
        """The paper's shifts by resolution ratio to the base (0, log 1/8, log 1/32; section 2.3), with the
        checks of :meth:`LayeredSchedule.paper`, and sinc noise unless ``noise_kind`` says otherwise."""
        schedule = LayeredSchedule.paper(resolutions)
        return cls(schedule.resolutions, schedule.shifts, **kw)

    @property
    def schedule(self) -> LayeredSchedule:
        """The per-resolution shifted schedules of eq. (3) that training and sampling share."""
        return LayeredSchedule(tuple(self.resolutions), tuple(self.shifts))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation. ``lr`` per AdamW step, ``ema_decay`` per step, ``cond_drop_prob`` the chance that a
    caption is dropped (classifier-free guidance), ``crop_size`` (pixels, at every resolution) enables
    strategic cropping (section 3.1) when set, ``checkpoint_every`` in steps."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    cond_drop_prob: float = 0.1
    crop_size: int | None = None
    checkpoint_every: int = 500
    seed: int = 0
    precision: str = "auto"  # auto | fp32 | bf16
    text_encoder: str = "minilm"  # minilm (all-MiniLM-L6-v2) | hash (a test stand-in)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")
        if not 0 <= self.cond_drop_prob < 1:
            raise ValueError("cond_drop_prob must be in [0, 1)")
        if self.text_encoder not in ("minilm", "hash"):
            raise ValueError(f"text_encoder must be minilm or hash, got {self.text_encoder!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")


# ------------------------------------------------------------------------------------------------ presets


@dataclass(frozen=True)
class Preset:
    """A family of models over ``resolutions`` (three, base first). ``single_blocks`` gives the encoder
    block count that the single-resolution baseline uses at each higher resolution (where the layered model
    uses ``layer_enc_blocks``): the baseline is an ordinary U-Net with the same widths."""

    name: str
    resolutions: tuple[int, int, int]
    base_widths: tuple[int, ...]
    base_blocks: tuple[int, ...]
    layer_widths: tuple[int, int]
    layer_enc_blocks: tuple[int, int]
    single_blocks: tuple[int, int]
    attention_levels: tuple[int, ...]
    head_channels: int = 64
    notes: str = ""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("smoke", (16, 32, 64), (32, 64), (1, 1), (16, 16), (0, 0), (1, 1), (1,), head_channels=32,
               notes="tiny, for tests: seconds per hundred steps"),
        # The CPU presets' widths and block counts are chosen so that Table 1's layered/single FLOPs ratios are
        # the paper's (0.927 at 2x, 0.861 at 4x; cpu16 0.926 and 0.863, cpu32 0.923 and 0.860, see `ldlib
        # flops`): the small comparison is then the paper's comparison at small size. Each higher layer needs
        # its own encoder blocks for that; without them (an earlier cpu16) the ratios were 0.859 and 0.775.
        Preset("cpu16", (16, 32, 64), (64, 96, 128), (1, 1, 1), (16, 16), (1, 3), (1, 4), (1, 2),
               notes="16/32/64 px for CPU experiments"),
        Preset("cpu32", (32, 64, 128), (64, 96, 128), (1, 1, 1), (16, 16), (1, 3), (1, 4), (1, 2),
               notes="32/64/128 px for CPU experiments"),
        # Block counts chosen so that Table 1's FLOPs come out near the paper's (the paper gives no architecture):
        # single128 1.23e12, layered/single 0.930 at 256 px and 0.848 at 512 px (see `ldlib flops`).
        Preset("paper", (128, 256, 512), (256, 512, 768, 768), (2, 2, 3, 3), (128, 64), (6, 7), (7, 10),
               (1, 2, 3), notes="128/256/512 px, base width 256 at 128 px, 128 at 256 px, 64 at 512 px (§2.1)"),
    ]
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def model_config(preset: str, levels: int = 3, single: bool = False, **overrides: Any) -> UNetConfig:
    """The network of ``preset`` with target resolution ``preset.resolutions[levels - 1]``: layered over the
    first ``levels`` resolutions, or (``single=True``) the single-resolution U-Net at that target with the
    same widths at every resolution."""
    p = get_preset(preset)
    if not 1 <= levels <= len(p.resolutions):
        raise ValueError(f"levels must be 1..{len(p.resolutions)}, got {levels}")
    extra = levels - 1
    if single:
        cfg = UNetConfig(
            resolutions=(p.resolutions[extra],),
            base_widths=tuple(reversed(p.layer_widths[:extra])) + p.base_widths,
            base_blocks=tuple(reversed(p.single_blocks[:extra])) + p.base_blocks,
            attention_levels=tuple(l + extra for l in p.attention_levels),
            head_channels=p.head_channels,
        )
    else:
        cfg = UNetConfig(
            resolutions=p.resolutions[:levels],
            base_widths=p.base_widths,
            base_blocks=p.base_blocks,
            layer_widths=p.layer_widths[:extra],
            layer_enc_blocks=p.layer_enc_blocks[:extra],
            attention_levels=p.attention_levels,
            head_channels=p.head_channels,
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


# ------------------------------------------------------------------------------------------ serialisation


def to_dict(cfg) -> dict:
    return {"type": type(cfg).__name__, **dataclasses.asdict(cfg)}


def from_dict(data: dict):
    types = {c.__name__: c for c in (UNetConfig, DiffusionConfig, TrainConfig)}
    data = dict(data)
    kind = data.pop("type", None)
    if kind not in types:
        raise ValueError(f"unknown config type {kind!r}")
    cls = types[kind]
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"{kind} has no fields {sorted(unknown)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**fixed)


def dumps(**configs) -> str:
    return json.dumps({k: to_dict(v) for k, v in configs.items()}, indent=2)
