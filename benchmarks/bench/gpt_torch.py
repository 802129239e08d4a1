"""A native PyTorch character GPT: nanoGPT's model and recipe (github.com/karpathy/nanoGPT, model.py and
train.py with config/train_shakespeare_char.py's CPU line), written here in torch.nn as that code is, with
GELU in its tanh form (xpnet's GELU) and no biases. The benchmark's own code: nothing of xpnet's model.

    net = build(vocab=65, context=64, layers=4, heads=4, dim=128, seed=1)
    opt = optimizer(net); lr = rate(it)             # AdamW with nanoGPT's decay rule; its get_lr(it)
    loss = net(x, y)                                 # x, y: int64 tensors (batch, context) -> mean cross-entropy

Parameters: token table (shared with the output projection, nanoGPT's weight tying), position table, per block
two LayerNorm weights, the fused q/k/v projection (dim, 3 dim), the attention's output projection, the MLP's
(dim, 4 dim) and (4 dim, dim); a final LayerNorm. N(0, 0.02) initialization, the residual projections
(attention output, MLP output) N(0, 0.02 / sqrt(2 layers)), LayerNorm weights 1.
"""
from __future__ import annotations

import math


def build(vocab: int, context: int, layers: int, heads: int, dim: int, seed: int):
    """The model, its parameters drawn from torch's generator seeded with `seed`."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(dim, 3 * dim, bias=False)
            self.proj = nn.Linear(dim, dim, bias=False)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.qkv(x).split(dim, dim=2)
            q, k, v = (a.view(b, t, heads, c // heads).transpose(1, 2) for a in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn = nn.LayerNorm(dim, bias=False), Attention()
            self.ln2 = nn.LayerNorm(dim, bias=False)
            self.fc, self.act = nn.Linear(dim, 4 * dim, bias=False), nn.GELU(approximate="tanh")
            self.proj = nn.Linear(4 * dim, dim, bias=False)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.proj(self.act(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(context, dim)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = nn.LayerNorm(dim, bias=False)
            self.head = nn.Linear(dim, vocab, bias=False)
            self.head.weight = self.wte.weight  # tied: one parameter
            for name, p in self.named_parameters():
                if name.endswith("proj.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))
                elif p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)

        def forward(self, idx, targets=None):
            t = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
            for blk in self.blocks:
                x = blk(x)
            logits = self.head(self.ln_f(x))
            if targets is None:
                return logits
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    torch.manual_seed(seed)
    return GPT()


def parameter_count(net, positions: bool = True) -> int:
    """Distinct parameters (the tied table once); positions=False leaves out the position table, as nanoGPT's
    get_num_params() prints it."""
    n = sum(p.numel() for p in net.parameters())
    return n if positions else n - net.wpe.weight.numel()


def optimizer(net, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1):
    """nanoGPT's configure_optimizers: AdamW, weight decay on every parameter of 2 or more dimensions (the
    matrices and the tables), none on the LayerNorm weights."""
    import torch
    params = [p for p in net.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def rate(it: int, lr=1e-3, warmup=100, decay_steps=2000, min_lr=1e-4) -> float:
    """nanoGPT's get_lr(it): linear warmup, cosine decay to min_lr at decay_steps, min_lr after."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_steps:
        return min_lr
    ratio = (it - warmup) / (decay_steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def mean_loss(net, blocks) -> float:
    """The mean cross-entropy over every position of `blocks`, an iterable of (x, y) host int64 arrays (every
    block weighted by its positions)."""
    import torch
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in blocks:
            n = y.size
            total += float(net(torch.from_numpy(x), torch.from_numpy(y))) * n
            count += n
    net.train()
    return total / count
