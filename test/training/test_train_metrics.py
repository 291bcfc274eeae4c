"""Retrieval recall and zero-shot accuracy on hand-made similarity matrices."""
from __future__ import annotations

import math

import pytest
import torch

from training.metrics import mean_normalised, recall_at_k, retrieval_metrics, zeroshot_accuracy


def test_recall_counts_any_relevant_item_in_the_top_k():
    sim = torch.tensor([[0.9, 0.1, 0.5],
                        [0.8, 0.7, 0.1],
                        [0.1, 0.4, 0.3]])
    rel = torch.eye(3, dtype=torch.bool)
    assert recall_at_k(sim, rel, 1) == pytest.approx(1 / 3)  # only row 0's most similar column is its own
    assert recall_at_k(sim, rel, 2) == pytest.approx(1.0)
    assert recall_at_k(sim, rel, 10) == pytest.approx(1.0)  # k beyond the columns: all of them
    both = retrieval_metrics(sim, rel, ks=(1,))
    assert both["a2t_r1"] == pytest.approx(1 / 3)
    assert both["t2a_r1"] == pytest.approx(2 / 3)  # columns 0 and 2 find their row first


def test_recall_accepts_several_relevant_captions():
    sim = torch.tensor([[0.1, 0.9], [0.9, 0.1]])
    rel = torch.tensor([[True, True], [False, True]])
    assert recall_at_k(sim, rel, 1) == pytest.approx(0.5)


def test_zeroshot_accuracy_and_shapes():
    sim = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    assert zeroshot_accuracy(sim, [1, 0, 0]) == pytest.approx(2 / 3)
    assert math.isnan(zeroshot_accuracy(torch.empty(0, 2), []))
    with pytest.raises(ValueError):
        zeroshot_accuracy(sim, [0])


def test_mean_normalised_averages_unit_vectors_per_group():
    emb = torch.tensor([[3.0, 0.0], [0.0, 10.0], [0.0, -2.0]])
    out = mean_normalised(emb, [0, 0, 1], 2)
    assert torch.allclose(out[0], torch.tensor([1.0, 1.0]) / 2 ** 0.5)
    assert torch.allclose(out[1], torch.tensor([0.0, -1.0]))
