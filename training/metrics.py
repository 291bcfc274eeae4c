"""Evaluation numbers computed from embeddings: retrieval recall both ways and zero-shot accuracy.

They take similarity matrices and label lists, not models, so they are tested with plain tensors.
"""
from __future__ import annotations

from typing import Sequence

import torch


def recall_at_k(similarity: torch.Tensor, relevant: torch.Tensor, k: int) -> float:
    """Share of queries (rows) with at least one relevant item among their `k` most similar columns."""
    if similarity.shape != relevant.shape:
        raise ValueError(f"similarity {tuple(similarity.shape)} and relevance {tuple(relevant.shape)} differ in shape")
    if similarity.shape[0] == 0:
        return float("nan")
    k = min(k, similarity.shape[1])
    top = similarity.topk(k, dim=1).indices
    return relevant.gather(1, top).any(dim=1).float().mean().item()


def retrieval_metrics(similarity: torch.Tensor, relevant: torch.Tensor,
                      ks: Sequence[int] = (1, 10)) -> dict[str, float]:
    """R@k audio→text (rows are clips) and text→audio (columns are captions)."""
    out = {}
    for k in ks:
        out[f"a2t_r{k}"] = recall_at_k(similarity, relevant, k)
        out[f"t2a_r{k}"] = recall_at_k(similarity.T, relevant.T, k)
    return out


def zeroshot_accuracy(similarity: torch.Tensor, targets: Sequence[int]) -> float:
    """Top-1 accuracy of argmax over class columns against target class indices."""
    if similarity.shape[0] != len(targets):
        raise ValueError(f"{similarity.shape[0]} rows of scores but {len(targets)} targets")
    if not len(targets):
        return float("nan")
    predicted = similarity.argmax(dim=1)
    return (predicted == torch.as_tensor(list(targets))).float().mean().item()


def mean_normalised(embeddings: torch.Tensor, groups: Sequence[int], n_groups: int) -> torch.Tensor:
    """Average of L2-normalised rows per group (windows → clip, templates → class), renormalised."""
    unit = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    index = torch.as_tensor(list(groups), dtype=torch.long)
    sums = torch.zeros(n_groups, unit.shape[1], dtype=unit.dtype).index_add_(0, index, unit)
    return torch.nn.functional.normalize(sums, dim=-1)
