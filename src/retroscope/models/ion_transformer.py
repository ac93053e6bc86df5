"""A pair-attention transformer over the ions of one event, with a diffusion denoiser.

After MOLEXA (Li et al., Nat. Commun. 2026; arXiv 2511.00179), dense and padded (at most
``max_ions`` ions, no graph library). An event is a set of ions, each row
(Z, q, p_x, p_y, p_z) with momenta in a.u.; an undetected atom of a known formula is a row
with its Z and q = 0, p = 0 (a query token); a padded row has Z = 0. Everything is
permutation-equivariant: no positional encoding, so the k-th output belongs to the k-th ion.

- :func:`momentum_frame`: the canonical frame of the detected momenta (x along the
  heaviest ion's momentum, the xy-plane holding the ion most orthogonal to it): the network
  reads and predicts in it.
- :class:`IonEncoder`: token = embed(Z) + embed(q) + MLP(p / 100, log|p|) + embed(detected);
  a pair tensor (B, N, N, pair_dim) from both tokens and the pair's relative momentum;
  ``depth`` blocks of masked attention along rows, then columns, then a transition MLP; node
  features = token + (a projection of) the masked mean of its pair row.
- :class:`Denoiser`: the raw network F of an EDM denoiser (Karras et al., NeurIPS 2022):
  per ion the scaled noisy position, its node features and the noise level, ``denoiser_depth``
  masked self-attention blocks over the ions, three outputs per ion (zero-initialised).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from retroscope.models.registry import register_model

#: columns of an ion row
ION_COLUMNS = ("z", "charge", "px_au", "py_au", "pz_au")
#: embedding sizes: atomic numbers up to Cl (17), charges up to 17
MAX_Z = 18
MAX_CHARGE = 18


def momentum_frame(ions: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (B, 3, 3) into the momentum frame of each event (rows: the frame's
    axes): x along the momentum of the detected ion of highest Z (then charge, then |p|),
    the xy-plane holding the detected ion whose momentum is most orthogonal to it."""
    z, q, p = ions[..., 0].double(), ions[..., 1].double(), ions[..., 2:5].double()
    detected = (z > 0) & (q > 0)
    norm = p.norm(dim=-1)
    key = torch.where(detected, (z * 1000.0 + q) * 1e6 + norm.clamp(max=1e6 - 1),
                      torch.full_like(norm, -math.inf))
    rows = torch.arange(len(p), device=p.device)
    anchor = key.argmax(dim=1)
    x = p[rows, anchor] / norm[rows, anchor, None].clamp(min=1e-300)
    cos = (p @ x[:, :, None])[..., 0].abs() / norm.clamp(min=1e-300)
    cos = torch.where(detected & (norm > 0), cos, torch.full_like(cos, math.inf))
    cos[rows, anchor] = math.inf
    second = cos.argmin(dim=1)
    y = p[rows, second] - (p[rows, second] * x).sum(-1, keepdim=True) * x
    # all momenta parallel (a linear molecule at rest): any perpendicular axis will do
    axis = torch.eye(3, dtype=p.dtype, device=p.device)[x.abs().argmin(dim=1)]
    degenerate = y.norm(dim=-1, keepdim=True) < 1e-9 * norm[rows, second, None]
    y = torch.where(degenerate, torch.linalg.cross(x, axis), y)
    y = y / y.norm(dim=-1, keepdim=True).clamp(min=1e-300)
    return torch.stack([x, y, torch.linalg.cross(x, y)], dim=1).to(ions.dtype)


class Attention(nn.Module):
    """Multi-head self-attention over the second-to-last axis with a key mask."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor, key_ok: torch.Tensor) -> torch.Tensor:
        """h (S, L, d), key_ok (S, L) bool (each row needs one True)."""
        s, n, d = h.shape
        q, k, v = self.qkv(h).reshape(s, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_ok[:, None, None, :])
        return self.out(a.transpose(1, 2).reshape(s, n, d))


class Transition(nn.Module):
    def __init__(self, dim: int, factor: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, factor * dim), nn.GELU(),
                                 nn.Linear(factor * dim, dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class PairBlock(nn.Module):
    """Masked attention along the rows of the pair tensor, then along its columns, then a
    transition MLP (each pre-normalised and residual)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.row_norm, self.col_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.row, self.col = Attention(dim, heads), Attention(dim, heads)
        self.transition = Transition(dim, factor=2)

    def forward(self, pair: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b, n, _, d = pair.shape
        # key j of row i: valid if ion j is; a padded row attends everywhere (and is ignored)
        key_ok = (valid[:, None, :] | ~valid[:, :, None]).reshape(b * n, n)
        pair = pair + self.row(self.row_norm(pair).reshape(b * n, n, d), key_ok).reshape(b, n, n, d)
        cols = self.col_norm(pair).transpose(1, 2).reshape(b * n, n, d)
        pair = pair + self.col(cols, key_ok).reshape(b, n, n, d).transpose(1, 2)
        return pair + self.transition(pair)


class IonEncoder(nn.Module):
    """Ion tokens (width ``dim``) and their pair tensor (width ``pair_dim``) -> node
    features (B, N, dim)."""

    def __init__(self, dim: int, depth: int, heads: int, pair_dim: int) -> None:
        super().__init__()
        self.z = nn.Embedding(MAX_Z, dim)
        self.charge = nn.Embedding(MAX_CHARGE, dim)
        self.detected = nn.Embedding(2, dim)
        self.momentum = nn.Sequential(nn.Linear(4, dim), nn.GELU(), nn.Linear(dim, dim))
        self.left, self.right = nn.Linear(dim, pair_dim), nn.Linear(dim, pair_dim)
        self.relative = nn.Sequential(nn.Linear(5, pair_dim), nn.GELU(),
                                      nn.Linear(pair_dim, pair_dim))
        self.blocks = nn.ModuleList(PairBlock(pair_dim, heads) for _ in range(depth))
        self.pooled = nn.Linear(pair_dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ions (B, N, 5) in the momentum frame -> (node features (B, N, d), valid (B, N))."""
        z = ions[..., 0].round().long().clamp(0, MAX_Z - 1)
        q = ions[..., 1].round().long().clamp(0, MAX_CHARGE - 1)
        valid = z > 0
        detected = valid & (q > 0)
        p = ions[..., 2:5] * detected[..., None]
        p_norm = p.norm(dim=-1, keepdim=True)
        token = (self.z(z) + self.charge(q) + self.detected(detected.long())
                 + self.momentum(torch.cat([p / 100.0, torch.log1p(p_norm)], -1))
                 * detected[..., None])
        dp = (p[:, :, None] - p[:, None, :]) / 100.0
        both = (detected[:, :, None] & detected[:, None, :])[..., None]
        cos = (p[:, :, None] * p[:, None, :]).sum(-1, keepdim=True) / (
            p_norm[:, :, None] * p_norm[:, None, :]).clamp(min=1e-6)
        rel = torch.cat([dp, dp.norm(dim=-1, keepdim=True), cos], -1) * both
        pair = self.left(token)[:, :, None] + self.right(token)[:, None, :] + self.relative(rel)
        for block in self.blocks:
            pair = block(pair, valid)
        w = valid[:, None, :, None].to(pair.dtype)
        pooled = (pair * w).sum(2) / w.sum(2).clamp(min=1.0)
        return self.norm(token + self.pooled(pooled)), valid


class DenoiserBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads)
        self.transition = Transition(dim)

    def forward(self, h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        key_ok = valid | ~valid.any(dim=1, keepdim=True)
        h = h + self.attention(self.norm(h), key_ok)
        return h + self.transition(h)


class Denoiser(nn.Module):
    """F(c_in x, c_noise; node features) -> (B, N, 3)."""

    def __init__(self, dim: int, depth: int, heads: int, fourier: int = 16) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.randn(fourier) * 4.0)
        self.noise = nn.Sequential(nn.Linear(2 * fourier, dim), nn.GELU(), nn.Linear(dim, dim))
        self.position = nn.Linear(3, dim)
        self.blocks = nn.ModuleList(DenoiserBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, 3)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, nodes: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        angle = 2 * math.pi * c_noise[:, None] * self.frequencies[None]
        noise = self.noise(torch.cat([angle.cos(), angle.sin()], -1))
        h = self.position(x) + nodes + noise[:, None, :]
        for block in self.blocks:
            h = block(h, valid)
        return self.out(self.norm(h)) * valid[..., None]


class IonTransformer(nn.Module):
    """The encoder and the denoiser of one model; ``embed`` gives the pooled features of an
    event (B, dim) for out-of-distribution scores."""

    def __init__(self, dim: int = 64, depth: int = 4, heads: int = 4,
                 denoiser_depth: int = 2, pair_dim: int = 32) -> None:
        super().__init__()
        self.config = {"dim": dim, "depth": depth, "heads": heads,
                       "denoiser_depth": denoiser_depth, "pair_dim": pair_dim}
        self.encoder = IonEncoder(dim, depth, heads, pair_dim)
        self.denoiser = Denoiser(dim, denoiser_depth, heads)
        self.feature_dim = dim

    def encode(self, ions_frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(ions_frame)

    def embed(self, ions_frame: torch.Tensor) -> torch.Tensor:
        nodes, valid = self.encoder(ions_frame)
        w = valid[..., None].to(nodes.dtype)
        return (nodes * w).sum(1) / w.sum(1).clamp(min=1.0)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, nodes: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, c_noise, nodes, valid)


@register_model("ion_transformer")
def ion_transformer(*, out_dim: int = 3, head: str = "diffusion", dim: int = 64,
                    depth: int = 4, heads: int = 4, denoiser_depth: int = 2,
                    pair_dim: int = 32) -> IonTransformer:
    """MOLEXA's pair-attention transformer with an EDM denoiser; CPU defaults: tokens 64
    wide, pairs 32, 4 pair blocks, 4 heads, a 2-block denoiser (MOLEXA: 512 wide, 6 blocks,
    32 heads)."""
    if out_dim != 3 or head != "diffusion":
        raise ValueError("ion_transformer predicts 3 coordinates per ion (head 'diffusion')")
    return IonTransformer(dim, depth, heads, denoiser_depth, pair_dim)
