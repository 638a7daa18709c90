"""The audio-to-face network: a small transformer over log-mel frames with banded attention.

Every output frame depends only on a bounded window of input: at most ``past_frames`` output frames
before it and ``lookahead_frames`` after it (see :class:`ModelConfig`). That is what lets the same
weights run whole files, bounded-memory chunks and live streams with identical results; see
``docs/model.md`` for the reasoning behind the layout.

Shapes: input features ``(B, 2T, n_mels)`` at 100 fps (two per output frame, from
:mod:`flamesync.audio.features`), outputs at 50 fps:

- ``weights``  ``(B, T, C)`` in [0, 1], the speech ARKit channels (``ModelConfig.channels``);
- ``closure``  ``(B, T)`` logits of lip closure for /p b m/;
- ``visemes``  ``(B, T, K)`` logits of the auxiliary viseme classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


def band_bias(table: torch.Tensor, n: int, past: int, future: int) -> torch.Tensor:
    """Additive attention bias: learned relative-position terms inside the band, -inf outside.

    Parameters
    ----------
    table : torch.Tensor, shape (H, past + future + 1)
        Bias per head for key offsets ``-past .. +future``.
    n : int
        Sequence length.

    Returns
    -------
    torch.Tensor, shape (H, n, n)
    """
    pos = torch.arange(n, device=table.device)
    rel = pos[None, :] - pos[:, None]  # key - query
    inside = (rel >= -past) & (rel <= future)
    idx = (rel + past).clamp(0, past + future)
    bias = table[:, idx]  # (H, n, n)
    return bias.masked_fill(~inside[None], float("-inf"))


class BandedSelfAttention(nn.Module):
    """Multi-head self-attention restricted to ``[j - past, j + future]`` with relative-position bias.

    ``impl="blocked"`` (default) splits the queries into blocks of ``block`` frames that each attend
    to their own key window, so cost and memory grow linearly with length; ``impl="mask"`` is the
    plain full-matrix reference (quadratic) that tests compare against.
    """

    def __init__(self, dim: int, heads: int, past: int, future: int, dropout: float, block: int = 32):
        super().__init__()
        self.heads, self.past, self.future, self.block = heads, past, future, block
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros(heads, past + future + 1))
        self.dropout = dropout
        self.impl = "blocked"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        if self.impl == "mask":
            bias = band_bias(self.rel_bias, n, self.past, self.future).to(q.dtype)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None], dropout_p=drop)
        else:
            y = blocked_band_attention(q, k, v, self.rel_bias, past=self.past, future=self.future,
                                       block=self.block, dropout=drop, training=self.training)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


def blocked_band_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor, *,
                           past: int, future: int, block: int, dropout: float = 0.0,
                           training: bool = False) -> torch.Tensor:
    """Banded attention computed block by block (linear in length).

    Queries are cut into blocks of ``block`` frames; block ``i`` attends to two consecutive key
    blocks starting ``past`` frames before it, which covers its whole band as long as
    ``past + future <= block`` (the caller widens the block otherwise). Keys outside the band or
    outside the sequence are masked.

    Parameters
    ----------
    q, k, v : torch.Tensor, shape (B, H, T, Dh)
    table : torch.Tensor, shape (H, past + future + 1)
        Relative-position bias for key offsets ``-past .. +future``.

    Returns
    -------
    torch.Tensor, shape (B, H, T, Dh)
    """
    block = max(block, past + future)
    bsz, h, n, dh = q.shape
    nb = (n + block - 1) // block
    tpad = nb * block - n
    kpad = (nb + 1) * block - n - past
    kp = F.pad(k, (0, 0, past, kpad)).reshape(bsz, h, nb + 1, block, dh)
    vp = F.pad(v, (0, 0, past, kpad)).reshape(bsz, h, nb + 1, block, dh)
    kb = torch.cat([kp[:, :, :-1], kp[:, :, 1:]], dim=3).reshape(bsz, h * nb, 2 * block, dh)
    vb = torch.cat([vp[:, :, :-1], vp[:, :, 1:]], dim=3).reshape(bsz, h * nb, 2 * block, dh)
    qb = F.pad(q, (0, 0, 0, tpad)).reshape(bsz, h * nb, block, dh)
    qi = torch.arange(block, device=q.device)
    wi = torch.arange(2 * block, device=q.device)
    rel = wi[None, :] - past - qi[:, None]  # key - query offset, (block, 2 block)
    inside = (rel >= -past) & (rel <= future)
    bias = table[:, (rel + past).clamp(0, past + future)]  # (H, block, 2 block)
    key_abs = torch.arange(nb, device=q.device)[:, None] * block + wi[None, :] - past  # (nb, 2 block)
    key_ok = (key_abs >= 0) & (key_abs < n)
    allowed = inside[None, :, :] & key_ok[:, None, :]  # (nb, block, 2 block)
    # A large finite negative rather than -inf: query rows of the padding tail see no valid key and
    # would turn into NaN; they are dropped below, and for real rows exp(-1e9) is exactly 0.
    mask = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill(~allowed, -1e9)
    full = (bias[:, None].to(q.dtype) + mask[None]).reshape(1, h * nb, block, 2 * block)
    y = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=full, dropout_p=dropout if training else 0.0)
    return y.reshape(bsz, h, nb * block, dh)[:, :, :n]


class CausalDepthwiseConv(nn.Module):
    """Depthwise convolution over the past ``kernel - 1`` frames and the current one."""

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(dim, dim, kernel, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        y = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        return F.gelu(self.conv(y)).transpose(1, 2)


class Block(nn.Module):
    """Pre-norm block: banded attention, causal depthwise conv, feed-forward."""

    def __init__(self, cfg: ModelConfig, future: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = BandedSelfAttention(cfg.dim, cfg.heads, cfg.attn_past, future, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.conv = CausalDepthwiseConv(cfg.dim, cfg.conv_kernel)
        self.norm3 = nn.LayerNorm(cfg.dim)
        self.ffn = nn.Sequential(
            nn.Linear(cfg.dim, cfg.ffn_mult * cfg.dim), nn.GELU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.ffn_mult * cfg.dim, cfg.dim),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        x = x + self.drop(self.conv(self.norm2(x)))
        return x + self.drop(self.ffn(self.norm3(x)))


class FlameSyncNet(nn.Module):
    """Log-mel frames (100 fps) to speech blendshape weights, closure and viseme logits (50 fps)."""

    def __init__(self, cfg: ModelConfig = ModelConfig()):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.front1 = nn.Conv1d(2 * cfg.n_mels, d, 3)
        self.front2 = nn.Conv1d(d, d, 3)
        self.blocks = nn.ModuleList(Block(cfg, f) for f in cfg.attn_future)
        self.norm = nn.LayerNorm(d)
        self.head_weights = nn.Linear(d, len(cfg.channels))
        self.head_closure = nn.Linear(d, 1)
        self.head_visemes = nn.Linear(d, cfg.n_visemes)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Parameters
        ----------
        feats : torch.Tensor, shape (B, 2T, n_mels)

        Returns
        -------
        weights : (B, T, C) in [0, 1]; closure : (B, T) logits; visemes : (B, T, K) logits
        """
        x = self.front(pair_frames(feats))
        for block in self.blocks:
            x = block(x)
        return self.heads(x)

    def front(self, pairs: torch.Tensor) -> torch.Tensor:
        """Front end: (B, T, 2 n_mels) feature pairs -> (B, T, dim). Looks 1 frame ahead, 3 back."""
        x = F.gelu(self.front1(F.pad(pairs.transpose(1, 2), (1, 1))))
        return F.gelu(self.front2(F.pad(x, (2, 0)))).transpose(1, 2)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-frame outputs from the last block's activations (B, T, dim)."""
        x = self.norm(x)
        return (
            torch.sigmoid(self.head_weights(x)),
            self.head_closure(x).squeeze(-1),
            self.head_visemes(x),
        )


def pair_frames(feats: torch.Tensor) -> torch.Tensor:
    """(B, 2T, M) features at 100 fps -> (B, T, 2M): frame j gets feature frames (2j-1, 2j).

    Output frame ``j`` sits at feature frame ``2j`` (time ``j / 50``); pairing it with the frame
    before it rather than after keeps the look-ahead down. Feature frame ``-1`` is zeros.
    """
    b, n2, m = feats.shape
    n = n2 // 2
    return F.pad(feats, (0, 0, 1, 0))[:, : 2 * n].reshape(b, n, 2 * m)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
