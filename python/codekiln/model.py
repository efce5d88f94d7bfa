"""The GPT model: a decoder-only transformer you can read in one sitting (after nanoGPT).

Parameter names follow nanoGPT / Hugging Face GPT-2 (``transformer.wte``, ``transformer.h.0.attn.
c_attn`` ...). The knobs beyond GPT-2 -- rotary position embeddings, RMSNorm, SwiGLU, untied
embeddings -- are plain config fields. Attention runs on one of four backends (``"auto"``,
``"triton"``, ``"sdpa"``, ``"naive"``) chosen in :mod:`codekiln.attention`, which also holds the
KV cache. The model knows only token ids: tokenizers, data and training live elsewhere.

>>> from codekiln.model import GPT
>>> model = GPT.from_preset("tiny", vocab_size=512)
>>> idx = torch.randint(0, 512, (2, 16))
>>> logits, loss = model(idx, targets=idx)
>>> tuple(logits.shape)
(2, 16, 512)
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
from torch.nn import functional as F

from codekiln.attention import (
    AttentionBackend,
    KVCache,
    attend,
    naive_attention,
    resolve_backend,
)

__all__ = [
    "GPT",
    "PEAK_FLOPS",
    "PRESETS",
    "GPTConfig",
    "KVCache",
    "attend",
    "naive_attention",
    "preset",
    "resolve_backend",
]

PosEmb = Literal["learned", "rope"]
Norm = Literal["layernorm", "rmsnorm"]
Mlp = Literal["gelu", "swiglu"]


@dataclass
class GPTConfig:
    """Model hyper-parameters. The defaults are GPT-2 small with a 32768-token vocabulary."""

    vocab_size: int = 32768  # token ids are in [0, vocab_size)
    block_size: int = 1024  # longest sequence (learned position table size, RoPE cache size)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768  # must be a multiple of n_head; head size = n_embd // n_head
    dropout: float = 0.0  # embeddings, attention probabilities, residual branches
    bias: bool = True  # biases in Linear layers and LayerNorm (GPT-2: True)
    pos_emb: PosEmb = "learned"  # "learned" (GPT-2 wpe table) or "rope" (rotary, no parameters)
    norm: Norm = "layernorm"  # "layernorm" (GPT-2) or "rmsnorm"
    mlp: Mlp = "gelu"  # "gelu" (4x, GPT-2) or "swiglu" (hidden ~8/3 x, same parameter count)
    tie_embeddings: bool = True  # lm_head shares the token embedding matrix (GPT-2)
    attention: AttentionBackend = "auto"  # see the module docstring
    rope_base: float = 10000.0  # RoPE frequency base
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"GPTConfig: {message}")

        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            check(
                isinstance(value, int) and value > 0,
                f"{name} must be a positive int, got {value!r}",
            )
        check(
            self.n_embd % self.n_head == 0,
            f"n_embd={self.n_embd} is not a multiple of n_head={self.n_head}",
        )
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        choices = {
            "pos_emb": ("learned", "rope"),
            "norm": ("layernorm", "rmsnorm"),
            "mlp": ("gelu", "swiglu"),
            "attention": ("auto", "triton", "sdpa", "naive"),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            check(value in allowed, f"{name}={value!r} is not one of {allowed}")
        check(
            self.pos_emb != "rope" or self.head_dim % 2 == 0,
            f"pos_emb='rope' needs an even head size, got {self.head_dim}",
        )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


#: Named configurations for :meth:`GPT.from_preset` / :meth:`GPTConfig` overrides.
PRESETS: dict[str, dict[str, Any]] = {
    # ~1M parameters with a 2048 vocabulary: a few CPU minutes to see the loss fall.
    "tiny": dict(vocab_size=2048, block_size=256, n_layer=4, n_head=4, n_embd=128),
    # GPT-2 small exactly (124M): 50257 tokens, 1024 positions, 12 x 12 x 768.
    "gpt2-small": dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
    # CodeParrot-small (~111M): the GPT-2 small layout with a 32768-token code vocabulary.
    "codeparrot-small": dict(vocab_size=32768, block_size=1024, n_layer=12, n_head=12, n_embd=768),
}

#: Dense bf16 tensor-core peaks (datasheets) for :meth:`GPT.estimate_mfu`.
PEAK_FLOPS: dict[str, float] = {"a100": 312e12, "h100-sxm": 989e12, "h200": 989e12}


def preset(name: str, **overrides: Any) -> GPTConfig:
    """The :class:`GPTConfig` of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return GPTConfig(**{**PRESETS[name], **overrides})


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """``x / rms(x) * weight`` (no mean subtraction, no bias), computed in fp32."""

    def __init__(self, ndim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.to(x.dtype) * self.weight


def _norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


def rope_tables(
    head_dim: int, length: int, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (length, head_dim // 2) fp32, for positions 0..length-1."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[i], x[i + hs/2]) of x (B, nh, T, hs) by the angles of cos/sin (T, hs/2).

    The "rotate half" layout of GPT-NeoX / LLaMA; computed in fp32 and cast back.
    """
    x1, x2 = x.float().chunk(2, dim=-1)
    y = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    return y.to(x.dtype)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.backend: AttentionBackend = config.attention
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        B, T, C = x.size()  # batch, sequence length, n_embd
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nh, T_cached + T, hs)
        dropout_p = self.dropout if self.training else 0.0
        y = attend(q, k, v, backend=self.backend, causal=True, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads (a view for triton)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.kind = config.mlp
        if config.mlp == "swiglu":
            # 3 matrices of C x h with h = 8C/3 (rounded up to 64) match the 2 x C x 4C of GELU.
            hidden = 64 * math.ceil(8 * config.n_embd / 3 / 64)
            self.c_fc = nn.Linear(config.n_embd, 2 * hidden, bias=config.bias)  # gate and up
        else:
            hidden = 4 * config.n_embd
            self.c_fc = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        if self.kind == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate="tanh")  # GPT-2's gelu
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = _norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = _norm(config)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), rope, cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    """Decoder-only transformer. ``forward(idx, targets=None, cache=None) -> (logits, loss)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=_norm(config),
            )
        )
        if config.pos_emb == "learned":
            self.transformer["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        else:
            cos, sin = rope_tables(config.head_dim, config.block_size, config.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)  # (block_size, hs/2)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.transformer.wte.weight = self.lm_head.weight  # one matrix, two uses

        # GPT-2 initialisation: N(0, 0.02) everywhere, and the projections that write into the
        # residual stream scaled by 1/sqrt(2 * n_layer) (two per block) so the stream's variance
        # does not grow with depth.
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GPT:
        """A freshly initialised model of preset ``name`` (see :data:`PRESETS`).

        >>> GPT.from_preset("tiny", vocab_size=300, pos_emb="rope").config.pos_emb
        'rope'
        """
        return cls(preset(name, **overrides))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # ----------------------------------------------------------------------------------------
    # forward and decoding
    # ----------------------------------------------------------------------------------------

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab_size) for every position of ``idx`` (B, T), and the loss.

        Args:
            idx: token ids. With ``cache``, only the *new* tokens: their positions continue from
                ``cache.length``.
            targets: (B, T) next-token ids; ``-1`` entries are ignored by the loss.
            cache: a :class:`KVCache` from :meth:`new_cache`; updated in place (the new keys and
                values are stored and ``cache.length`` advances by T).

        Returns:
            ``(logits, loss)``; ``loss`` is the mean cross-entropy, or None without targets.
        """
        if idx.dim() != 2:
            raise ValueError(
                f"idx must be a (batch, time) tensor of token ids, got shape {tuple(idx.shape)}"
            )
        if targets is not None and targets.shape != idx.shape:
            raise ValueError(
                f"targets must have the shape of idx {tuple(idx.shape)}, got {tuple(targets.shape)}"
            )
        _, T = idx.size()  # (B, T)
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(
                f"sequence of {start + T} positions ({start} cached + {T} new) is longer than "
                f"block_size={self.config.block_size}"
            )
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if self.config.pos_emb == "learned":
            pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)
            x = x + self.transformer.wpe(pos)  # (T, C) broadcast over B
        else:
            rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T])
        x = self.transformer.drop(x)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, rope, cache, layer)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        if cache is not None:
            cache.length += T
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1
            )
        return logits, loss

    def new_cache(self, max_len: int | None = None) -> KVCache:
        """An empty :class:`KVCache` for up to ``max_len`` (default ``block_size``) positions."""
        max_len = self.config.block_size if max_len is None else max_len
        if not 0 < max_len <= self.config.block_size:
            raise ValueError(f"max_len must be in [1, block_size={self.config.block_size}]")
        return KVCache(self.config.n_layer, max_len)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled tokens to ``idx`` (B, T), using a KV cache.

        ``top_k=1`` is greedy decoding. The prompt's last ``block_size`` tokens are prefilled;
        when the cache is full, it is rebuilt from the last ``block_size // 2`` tokens, so each
        rebuild buys ``block_size // 2`` one-token steps (amortised O(block_size) work per token,
        where re-prefilling the whole window per token, nanoGPT's crop, costs
        O(block_size^2)). The same window rule as :func:`codekiln.generate.complete`.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature} (use top_k=1 for greedy)")
        cache: KVCache | None = None
        for _ in range(max_new_tokens):
            if cache is None or cache.length + 1 > cache.max_len:
                block = self.config.block_size
                window = block if cache is None else max(1, block // 2)
                cache = self.new_cache()
                logits, _ = self(idx[:, -window:], cache=cache)  # prefill
            else:
                logits, _ = self(idx[:, -1:], cache=cache)  # one new position
            logits = logits[:, -1, :] / temperature  # (B, vocab_size)
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits.float(), dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx

    # ----------------------------------------------------------------------------------------
    # accounting
    # ----------------------------------------------------------------------------------------

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count (a tied matrix counted once).

        With ``non_embedding`` the lookup tables that do no matmul are left out: the position
        table and, when untied, the input token table (a tied table is also the output head).
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            if self.config.pos_emb == "learned":
                n -= self.transformer.wpe.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.transformer.wte.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs (forward + backward) per token, PaLM appendix B / nanoGPT convention.

        ``6 N`` for the matmuls of N non-embedding parameters plus ``12 L C T`` for attention
        scores and weighted values (not halved for the causal mask).
        """
        T = self.config.block_size if seq_len is None else seq_len
        cfg = self.config
        return 6 * self.num_params() + 12 * cfg.n_layer * cfg.n_embd * T

    def estimate_mfu(
        self, fwdbwd_per_iter: int, dt: float, peak_flops: float, seq_len: int | None = None
    ) -> float:
        """Model FLOPs utilisation: achieved FLOP/s over ``peak_flops`` (see :data:`PEAK_FLOPS`).

        Args:
            fwdbwd_per_iter: sequences of ``seq_len`` (default block_size) tokens per iteration
                (batch size x gradient-accumulation steps).
            dt: seconds per iteration.
            peak_flops: the device's peak FLOP/s in the training dtype, e.g. 989e12 (H100 bf16).
        """
        T = self.config.block_size if seq_len is None else seq_len
        flops_per_iter = self.flops_per_token(T) * T * fwdbwd_per_iter
        return flops_per_iter / dt / peak_flops

    # ----------------------------------------------------------------------------------------
    # training helpers
    # ----------------------------------------------------------------------------------------

    def configure_optimizers(
        self,
        weight_decay: float,
        learning_rate: float,
        betas: tuple[float, float] = (0.9, 0.95),
        device_type: str = "cpu",
    ) -> torch.optim.AdamW:
        """AdamW with weight decay on matrices (Linear and embedding weights) only.

        Biases and norm gains (1-D tensors) are not decayed. ``fused=True`` on CUDA.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        extra = {}
        if device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters:
            extra["fused"] = True
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **extra)

    @torch.no_grad()
    def resize_vocab(
        self, new_vocab_size: int, init_from: int | Sequence[int] | None = None
    ) -> None:
        """Grow or shrink the token embedding and the output head to ``new_vocab_size``.

        Existing rows are kept. New rows are copies of row ``init_from`` -- e.g. the id of
        ``"\\t"`` when adding whitespace-run tokens (the Code Clippy trick: a new "four spaces"
        token starts out meaning what an indent already meant) -- or, with a sequence, one
        source id per new row; ``None`` draws them from N(0, 0.02). Build the optimizer after
        resizing: the parameters are new tensors.
        """
        old = self.config.vocab_size
        if new_vocab_size <= 0:
            raise ValueError(f"new_vocab_size must be positive, got {new_vocab_size}")
        added = max(0, new_vocab_size - old)
        sources: list[int] | None = None
        if init_from is not None and added:
            sources = [init_from] * added if isinstance(init_from, int) else list(init_from)
            if len(sources) != added:
                raise ValueError(
                    f"init_from has {len(sources)} ids for {added} new rows ({old} -> "
                    f"{new_vocab_size})"
                )
            bad = [s for s in sources if not 0 <= s < old]
            if bad:
                raise ValueError(
                    f"init_from ids {bad[:5]} are outside the old vocabulary [0, {old})"
                )

        def resized(old_weight: torch.Tensor) -> torch.Tensor:
            w = old_weight.new_empty((new_vocab_size, old_weight.size(1)))
            keep = min(old, new_vocab_size)
            w[:keep] = old_weight[:keep]
            if added:
                if sources is None:
                    nn.init.normal_(w[old:], mean=0.0, std=0.02)
                else:
                    w[old:] = old_weight[torch.tensor(sources, device=old_weight.device)]
            return w

        # Built on the meta device (no allocation, no init), then given the resized weights.
        wte = nn.Embedding(new_vocab_size, self.config.n_embd, device="meta")
        wte.weight = nn.Parameter(resized(self.transformer.wte.weight))
        lm_head = nn.Linear(self.config.n_embd, new_vocab_size, bias=False, device="meta")
        if self.config.tie_embeddings:
            lm_head.weight = wte.weight
        else:
            lm_head.weight = nn.Parameter(resized(self.lm_head.weight))
        self.transformer.wte, self.lm_head = wte, lm_head
        self.config = dataclasses.replace(self.config, vocab_size=new_vocab_size)
