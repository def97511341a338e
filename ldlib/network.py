"""The layered U-Net of section 2.1 (Fig. 1).

* Multiple inputs: an input convolution per resolution into that resolution's hidden width.
* Isolated downsampling: only the base U-Net (at the lowest resolution) downsamples. A higher resolution's
  input is never downsampled into the base path: its encoder features reach the decoder only as skip
  connections, concatenated in the upsampling path.
* Multiple outputs: an output convolution per resolution in the upsampling path; the model predicts the
  clean image x_hat_i at every resolution (x-prediction, eq. 3).

Conditioning: the diffusion time t (sinusoidal embedding), a pooled text vector added to the time embedding,
and cross-attention to the frozen text encoder's token states at the base levels listed in
``UNetConfig.attention_levels``. For classifier-free guidance a caption can be dropped per sample
(``keep_text`` False): its tokens are masked out and a learned null vector replaces its pooled vector.

With K = 1 the same class is an ordinary text-conditioned U-Net: the single-resolution baseline.
The network knows nothing about schedules or noise: it maps (z_1..z_K, t, text) to (x_hat_1..x_hat_K).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from .config import UNetConfig
from .crop import CropBox


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, ch // 4) if ch >= 32 else 8 if ch % 8 == 0 else 1, ch)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] (scaled by 1000 so that neighbouring steps differ)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the conditioning embedding as a scale and shift in between."""

    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = _norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = _norm(cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Self-attention over the image positions plus cross-attention to the text tokens, in one
    scaled-dot-product call over the concatenated keys (Imagen style); masked text tokens are ignored."""

    def __init__(self, ch: int, text_dim: int, head_channels: int):
        super().__init__()
        self.heads = max(1, ch // head_channels)
        self.norm = _norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.text_kv = nn.Linear(text_dim, 2 * ch)
        self.out = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n, d = self.heads, c // self.heads
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, n, d, h * w).permute(1, 0, 2, 4, 3)
        tk, tv = self.text_kv(tokens).reshape(b, -1, 2, n, d).permute(2, 0, 3, 1, 4)
        k = torch.cat([k, tk.to(k.dtype)], dim=2)
        v = torch.cat([v, tv.to(v.dtype)], dim=2)
        keep = torch.cat([torch.ones(b, h * w, dtype=torch.bool, device=x.device), token_mask], dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        return x + self.out(out.transpose(2, 3).reshape(b, c, h, w))


class Block(nn.Module):
    """A residual block, optionally followed by attention."""

    def __init__(self, cin: int, cout: int, emb_dim: int, cfg: UNetConfig, attention: bool):
        super().__init__()
        self.res = ResBlock(cin, cout, emb_dim, cfg.dropout)
        self.attn = Attention(cout, cfg.text_dim, cfg.head_channels) if attention else None

    #: Recompute this block in the backward pass instead of keeping its activations (``ldlib.runtime.device``'s
    #: ``Execution(checkpoint_activations=True)``): the same numbers for about one more forward pass of compute,
    #: and what lets the ``paper`` preset train at a useful batch on one GPU (``ldlib.training.memory``).
    checkpoint: bool = False

    def forward(self, x, emb, tokens, mask):
        if self.checkpoint and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self._forward, x, emb, tokens, mask, use_reentrant=False)
        return self._forward(x, emb, tokens, mask)

    def _forward(self, x, emb, tokens, mask):
        x = self.res(x, emb)
        return self.attn(x, tokens, mask) if self.attn is not None else x


class Upsample(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _head(ch: int, out: int) -> nn.Sequential:
    return nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, out, 3, padding=1))


class LayeredUNet(nn.Module):
    """See the module docstring. ``forward(z, t, tokens, token_mask, pooled, keep_text=None, crops=None)``."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        c0 = cfg.base_widths[0]
        emb_dim = 4 * c0
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.text_pool = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, emb_dim))
        self.null_pooled = nn.Parameter(torch.zeros(cfg.text_dim))
        self.null_token = nn.Parameter(torch.zeros(1, 1, cfg.text_dim))
        ic = cfg.image_channels

        # --- base U-Net (resolution 0), ADM layout -----------------------------------------------------
        self.base_in = nn.Conv2d(ic, c0, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [c0]
        ch = c0
        for lvl, (width, n) in enumerate(zip(cfg.base_widths, cfg.base_blocks)):
            for _ in range(n):
                self.down.append(Block(ch, width, emb_dim, cfg, lvl in cfg.attention_levels))
                ch = width
                skips.append(ch)
            if lvl < len(cfg.base_widths) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid = nn.ModuleList([
            Block(ch, ch, emb_dim, cfg, cfg.mid_attention),
            Block(ch, ch, emb_dim, cfg, False),
        ])
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(cfg.base_widths))):
            width = cfg.base_widths[lvl]
            for i in range(cfg.base_blocks[lvl] + 1):
                self.up.append(Block(ch + skips.pop(), width, emb_dim, cfg, lvl in cfg.attention_levels))
                ch = width
            if lvl > 0:
                self.up.append(Upsample(ch, ch))
        self.base_out = _head(ch, ic)

        # --- higher resolutions: isolated encoder, decoder fed by upsampling + skips, own output head ----
        self.layer_in = nn.ModuleList()
        self.layer_enc = nn.ModuleList()
        self.layer_up = nn.ModuleList()
        self.layer_dec = nn.ModuleList()
        self.layer_out = nn.ModuleList()
        for width, n in zip(cfg.layer_widths, cfg.layer_enc_blocks):
            self.layer_in.append(nn.Conv2d(ic, width, 3, padding=1))
            self.layer_enc.append(nn.ModuleList([Block(width, width, emb_dim, cfg, False) for _ in range(n)]))
            self.layer_up.append(Upsample(ch, width))
            self.layer_dec.append(nn.ModuleList([Block(2 * width, width, emb_dim, cfg, False) for _ in range(n + 1)]))
            self.layer_out.append(_head(width, ic))
            ch = width

    def conditioning(self, t, tokens, token_mask, pooled, keep_text):
        """The embedding added in every block, and the text tokens/mask the attention layers see."""
        b = t.shape[0]
        if keep_text is None:
            keep_text = torch.ones(b, dtype=torch.bool, device=t.device)
        keep = keep_text[:, None]
        pooled = torch.where(keep, pooled, self.null_pooled.to(pooled.dtype)[None])
        # A dropped caption attends to one learned null token only, so no softmax row is ever empty.
        tokens = torch.cat([self.null_token.expand(b, 1, -1).to(tokens.dtype), tokens], dim=1)
        mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=t.device), token_mask & keep], dim=1)
        emb = self.time_mlp(timestep_embedding(t, self.cfg.base_widths[0])) + self.text_pool(pooled)
        return emb, tokens, mask

    def forward(
        self,
        z: Sequence[torch.Tensor],
        t: torch.Tensor,
        tokens: torch.Tensor,
        token_mask: torch.Tensor,
        pooled: torch.Tensor,
        keep_text: torch.Tensor | None = None,
        crops: Sequence[CropBox | None] | None = None,
    ) -> list[torch.Tensor]:
        """Predict the clean image at every resolution.

        ``z``: noisy inputs, base first, each ``(B, C, r_i, r_i)`` (or the crop's size when cropping);
        ``t``: ``(B,)`` diffusion times in [0, 1]; ``tokens``/``token_mask``/``pooled``: the text encoder's
        token states ``(B, T, D)``, their padding mask ``(B, T)`` and pooled vectors ``(B, D)``;
        ``keep_text``: ``(B,)`` booleans, False drops that caption (classifier-free guidance);
        ``crops``: strategic cropping (section 3.1), one absolute :class:`CropBox` per resolution (None for
        an uncropped level); the decoder crops its features to the next level's region before upsampling.
        """
        cfg = self.cfg
        if len(z) != cfg.levels:
            raise ValueError(f"model has {cfg.levels} resolutions, got {len(z)} inputs")
        emb, tokens, mask = self.conditioning(t, tokens, token_mask, pooled, keep_text)

        h = self.base_in(z[0])
        skips = [h]
        for layer in self.down:
            h = layer(h, emb, tokens, mask) if isinstance(layer, Block) else layer(h)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb, tokens, mask)
        for layer in self.up:
            if isinstance(layer, Block):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb, tokens, mask)
            else:
                h = layer(h)
        outputs = [self.base_out(h)]

        for k in range(1, cfg.levels):
            if crops is not None and crops[k] is not None:
                h = crops[k].relative_to(crops[k - 1], h.shape[-1]).apply(h)
            e = self.layer_in[k - 1](z[k])
            enc = [e]
            for block in self.layer_enc[k - 1]:
                e = block(e, emb, tokens, mask)
                enc.append(e)
            h = self.layer_up[k - 1](h)
            if h.shape[-2:] != e.shape[-2:]:
                raise ValueError(f"resolution {k}: input is {tuple(e.shape[-2:])} but the decoder brings {tuple(h.shape[-2:])}")
            for block in self.layer_dec[k - 1]:
                h = block(torch.cat([h, enc.pop()], dim=1), emb, tokens, mask)
            outputs.append(self.layer_out[k - 1](h))
        return outputs


def build_model(cfg: UNetConfig) -> LayeredUNet:
    """The one way to build a network from a config."""
    return LayeredUNet(cfg)


def set_activation_checkpointing(model: nn.Module, enabled: bool) -> int:
    """Turn recomputation (:attr:`Block.checkpoint`) on or off for every block of ``model``; returns how many."""
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    for m in blocks:
        m.checkpoint = enabled
    return len(blocks)
