"""A small causal transformer over characters, built from scratch (no downloads), and its sampler.

Pre-LayerNorm GPT blocks with learned positions. Sampling runs every sequence of the batch in one
autoregressive loop with a key/value cache: the prompt is encoded once, then one token per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dvao_cli.train.vocab import BOS, EOS, PAD, VOCAB_SIZE

# per layer: (keys, values), each (B, heads, T, head_dim)
KVCache = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class PolicyConfig:
    layers: int = 2
    width: int = 64
    heads: int = 4
    max_len: int = 32
    vocab_size: int = VOCAB_SIZE


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        # x: (B, T, C); past keys/values: (B, H, T_past, C/H)
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        if past is not None:
            t_past = past[0].shape[2]
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
            # new token i attends to every cached one and to new tokens 0..i
            mask = (
                None
                if t == 1
                else torch.ones(t, t_past + t, dtype=torch.bool, device=x.device).tril(t_past)
            )
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, c))
        x = x + self.mlp(self.ln2(x))
        return x, (k, v)


class Policy(nn.Module):
    """Causal character transformer: token ids (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        if config.width % config.heads:
            raise ValueError("width must be a multiple of heads")
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.width)
        self.pos = nn.Embedding(config.max_len, config.width)
        self.blocks = nn.ModuleList(Block(config.width, config.heads) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab_size, bias=False)

    def forward(self, idx: Tensor, past: KVCache | None = None) -> tuple[Tensor, KVCache]:
        # idx: (B, T) token ids; positions continue after the cached ones
        start = 0 if past is None else past[0][0].shape[2]
        pos = torch.arange(start, start + idx.shape[1], device=idx.device)
        x = self.tok(idx) + self.pos(pos)
        cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if past is None else past[i])
            cache.append(kv)
        return self.head(self.ln_f(x)), cache


def build_policy(config: PolicyConfig, generator: torch.Generator) -> Policy:
    """A policy with weights drawn from `generator` (GPT-2 style init), so a seed fixes them."""
    model = Policy(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
            elif name.endswith("bias"):
                param.zero_()
    return model


def masked_logits(logits: Tensor, temperature: float) -> Tensor:
    """Scale by temperature and forbid PAD/BOS (the policy never emits them)."""
    logits = logits / temperature
    logits[..., PAD] = float("-inf")
    logits[..., BOS] = float("-inf")
    return logits


def repeat_cache(cache: KVCache, repeats: int) -> KVCache:
    """Each cached row `repeats` times, in place order: (B, H, T, D) -> (B * repeats, H, T, D)."""
    if repeats == 1:
        return cache
    return [(k.repeat_interleave(repeats, 0), v.repeat_interleave(repeats, 0)) for k, v in cache]


@torch.no_grad()
def sample(
    model: Policy,
    prompts: Tensor,
    max_new_tokens: int,
    temperature: float,
    generator: torch.Generator,
    group_size: int = 1,
) -> Tensor:
    """Sample `group_size` completions for each of `prompts` (P, T_p), all of the same length,
    in one batched loop; the prompts are encoded once each, then every row gets one token a step.

    Returns (P * group_size, T_c) token ids, the completions of prompt i in rows
    i * group_size ..: each row is the completion up to and including EOS, then PAD. T_c is the
    longest completion (at most max_new_tokens); a row that never emits EOS is cut there.
    """
    b = prompts.shape[0] * group_size
    out = torch.full((b, max_new_tokens), PAD, dtype=torch.long, device=prompts.device)
    done = torch.zeros(b, dtype=torch.bool, device=prompts.device)
    logits, cache = model(prompts)  # (P, T_p, V)
    logits = logits[:, -1:, :].repeat_interleave(group_size, 0)  # (B, 1, V)
    cache = repeat_cache(cache, group_size)
    for t in range(max_new_tokens):
        probs = torch.softmax(masked_logits(logits[:, -1, :], temperature), dim=-1)  # (B, V)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        out[:, t] = nxt
        done = done | (nxt == EOS)
        if bool(done.all()) or t == max_new_tokens - 1:
            return out[:, : t + 1]
        logits, cache = model(nxt.unsqueeze(1), cache)
    return out


def token_logprobs(
    model: Policy, prompts: Tensor, completions: Tensor, temperature: float, group_size: int = 1
) -> Tensor:
    """Log-probabilities (B, T_c) of `completions` (B, T_c) under `model`, where row j continues
    prompt j // group_size of `prompts` (P, T_p): each prompt is encoded once and its keys and
    values are shared by its group (gradients flow back through them).

    PAD positions (after the end token) get 0, so ratios there are 1 and nothing overflows
    before the mask is applied.
    """
    logits, cache = model(prompts)  # (P, T_p, V): the last position predicts token 0
    first = logits[:, -1:, :].repeat_interleave(group_size, 0)  # (B, 1, V)
    if completions.shape[1] > 1:
        rest, _ = model(completions[:, :-1], repeat_cache(cache, group_size))  # (B, T_c-1, V)
        first = torch.cat([first, rest], dim=1)
    logits = masked_logits(first, temperature)  # (B, T_c, V)
    safe = torch.where(completions == PAD, torch.full_like(completions, EOS), completions)
    logp = torch.log_softmax(logits, dim=-1).gather(2, safe.unsqueeze(2)).squeeze(2)
    return logp.masked_fill(completions == PAD, 0.0)
