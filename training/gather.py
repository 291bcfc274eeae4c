"""All-gather of embeddings across DDP ranks, with gradients flowing back to each rank's own shard.

Why: a contrastive loss needs every other clip of the *global* batch as a negative. Computed per
rank, a 2-GPU run with batch 32 per GPU trains as two independent batch-32 runs, not one batch-64
run. Each rank gathers all ranks' audio and text embeddings and computes the loss over the global
batch (the same value on every rank). Backward sums, over ranks, the gradient each rank's loss
sends to a shard and returns this rank's part; DDP then averages the parameter gradients over the
world, which gives exactly the single-process gradient of the global-batch loss.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


class _AllGather(torch.autograd.Function):
    """Rows of every rank in rank order (uneven shard sizes allowed: padded for the collective)."""

    @staticmethod
    def forward(ctx, local: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world, rank = dist.get_world_size(), dist.get_rank()
        sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([local.shape[0]], dtype=torch.long, device=local.device))
        counts = [int(s.item()) for s in sizes]
        longest = max(counts)
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        ctx.counts, ctx.rank = counts, rank
        return torch.cat([p[:n] for p, n in zip(parts, counts)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every rank's loss depends on this rank's rows
        start = sum(ctx.counts[: ctx.rank])
        return grad[start : start + ctx.counts[ctx.rank]]


def gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """`[n_local, d]` → `[n_global, d]` under DDP (rank order); the tensor itself in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    return _AllGather.apply(local)
