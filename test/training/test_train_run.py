"""End-to-end training on real sounds45 clips with a tiny model: the loss falls, checkpoints reload
to identical outputs, a resumed run retraces the uninterrupted one bit for bit, fine-tuning respects
frozen towers, and bad input ends in a one-line error."""
from __future__ import annotations

import csv

import pytest
import torch

from clap_core import load_torch_model
from clap_core.checkpoints import load_checkpoint
from clap_core.projection import text_gates
from training.config import load_config
from training.data_setup import read_manifests
from training.distributed import setup_runtime
from training.loop import Trainer
from training.run_state import STATE_FILE
from training.train import main
from train_fixtures import clip_rows, manifests, tiny_config_dict, write_run_config  # noqa: F401


EPOCHS = 4


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_config_dict, manifests, sounds45, write_run_config):
    folder = tmp_path_factory.mktemp("full")
    path = write_run_config(folder / "run.yaml", tiny_config_dict, manifests, sounds45, folder / "out",
                            train={"epochs": EPOCHS})
    trainer = Trainer(load_config(path), setup_runtime("cpu"))
    trainer.fit()
    return trainer, folder


def test_loss_falls_and_every_metric_is_logged(full_run):
    trainer, folder = full_run
    history = trainer.state.history
    assert [row["epoch"] for row in history] == list(range(EPOCHS + 1))  # epoch 0: before training
    val = [row["val_loss"] for row in history]  # fixed crops and batches: no sampling noise
    assert val[-1] < val[0], val  # better than the untrained start
    assert val[-1] < 0.9 * val[1] and val[1:] == sorted(val[1:], reverse=True), val  # and falling every epoch
    train = [row["train_loss"] for row in history[1:]]
    for row in history:
        assert set(row) >= {"val_loss", "a2t_r1", "a2t_r10", "t2a_r1", "t2a_r10", "zeroshot_acc", "lr", "temperature"}
        assert 0.0 <= row["zeroshot_acc"] <= 1.0 and row["val_loss"] == row["val_loss"]
    out = folder / "out"
    with (out / "log.csv").open() as fh:
        logged = list(csv.DictReader(fh))
    assert [float(r["train_loss"]) for r in logged[1:]] == pytest.approx(train)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for sub in ("best", "last"):
        assert (out / sub / "model.safetensors").is_file() and (out / sub / "config.json").is_file()
    state = torch.load(out / "last" / STATE_FILE, weights_only=True)
    assert state["epoch"] == EPOCHS and len(state["history"]) == EPOCHS + 1


def test_checkpoint_reloads_to_identical_outputs(full_run):
    trainer, folder = full_run
    reloaded = load_checkpoint(folder / "out" / "last")
    model = trainer.model.eval()
    waves = torch.stack([trainer.data.val[i][0] for i in range(len(trainer.data.val))])
    texts = trainer.data.val_captions
    with torch.no_grad():
        assert torch.equal(model.encode_audio(waves), reloaded.encode_audio(waves))
        assert torch.equal(model.encode_text(texts), reloaded.encode_text(texts))
    assert torch.equal(model.logit_scale, reloaded.logit_scale)
    assert not torch.equal(model.text_projection.linear1.weight,
                           load_checkpoint_init(trainer).text_projection.linear1.weight)


def load_checkpoint_init(trainer):
    """The same architecture freshly initialised with the run's seed: what training started from."""
    from training.model_setup import build_model

    torch.manual_seed(trainer.config.train.seed)
    return build_model(trainer.config)


@pytest.mark.slow
def test_resume_retraces_the_uninterrupted_run(full_run, tmp_path, tiny_config_dict, manifests, sounds45,
                                               write_run_config):
    trainer, _ = full_run
    out = tmp_path / "out"
    path = write_run_config(tmp_path / "run.yaml", tiny_config_dict, manifests, sounds45, out,
                            train={"epochs": EPOCHS})
    assert main(["--config", str(path), "--set", "train.epochs=2"]) == 0
    assert main(["--resume", str(out), "--set", f"train.epochs={EPOCHS}"]) == 0
    resumed = torch.load(out / "last" / STATE_FILE, weights_only=True)["history"]
    for key in ("train_loss", "val_loss", "a2t_r1", "zeroshot_acc", "lr", "temperature"):
        assert [repr(row[key]) for row in resumed] == [repr(row[key]) for row in trainer.state.history], key
    final = load_checkpoint(out / "last").state_dict()
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(final[name], value), name


def test_finetune_a_checkpoint_with_the_text_tower_frozen(tmp_path, tiny_model_dir, manifests, sounds45,
                                                          write_run_config):
    """Fine-tuning the suite's tiny CNN14 + BERT checkpoint: the audio side learns, frozen parts stay."""
    path = write_run_config(tmp_path / "run.yaml", {}, manifests, sounds45, tmp_path / "out",
                            train={"epochs": 1}, data={"clip_seconds": 1.0, "zeroshot": None})
    config = load_config(path, ["model.config=null", f"model.weights={tiny_model_dir}", "model.audio_tower=trainable",
                                "model.text_tower=frozen", "model.logit_scale=frozen", "optim.tower_lr=1e-4"])
    trainer = Trainer(config, setup_runtime("cpu"))
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [1e-3, 1e-4]  # projections, audio tower
    trainer.fit()
    start = load_checkpoint(tiny_model_dir).state_dict()
    after = trainer.model.state_dict()
    text = [k for k in start if k.startswith("text_tower.")]
    assert text and all(torch.equal(start[k], after[k]) for k in text)
    assert torch.equal(start["logit_scale"], after["logit_scale"])
    for key in ("audio_tower.conv_block1.conv1.weight", "audio_tower.bn0.running_mean",
                "text_projection.linear1.weight"):
        assert not torch.equal(start[key], after[key]), key


def test_bad_input_ends_in_one_line_errors(tmp_path, tiny_config_dict, manifests, sounds45, capsys,
                                           write_run_config):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,caption\na.wav,x\n")
    path = write_run_config(tmp_path / "run.yaml", tiny_config_dict, manifests, sounds45, tmp_path / "out")
    cases = [
        (["--config", str(path), "--set", f"data.train={bad}"], "error: manifest"),
        (["--config", str(path), "--set", "optim.lr=-1"], "error: optim.lr"),
        (["--config", str(path), "--set", f"data.train={tmp_path / 'missing.csv'}"], "no such file"),
        (["--resume", str(tmp_path)], "not a training run folder"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_a_trained_package_tower_is_stored_in_the_checkpoint(tmp_path, tiny_config_dict, manifests, sounds45,
                                                             write_run_config):
    """Towers that normally load from an installed package (MiniLM in the default model) must be
    saved once trained, or a reload would bring back the untrained package weights."""
    import shutil

    from transformers import BertConfig, BertModel

    text_dir = tmp_path / "text_pkg"
    source = tiny_config_dict["text"]["source"]
    shutil.copytree(source, text_dir)
    torch.manual_seed(1)
    BertModel(BertConfig.from_pretrained(source)).save_pretrained(str(text_dir))
    model_config = dict(tiny_config_dict, text=dict(tiny_config_dict["text"], source=str(text_dir),
                                                    weights_from_package=True))
    path = write_run_config(tmp_path / "run.yaml", model_config, manifests, sounds45, tmp_path / "out",
                            train={"epochs": 1}, data={"zeroshot": None})
    trainer = Trainer(load_config(path), setup_runtime("cpu"))
    trainer.fit()
    reloaded = load_checkpoint(tmp_path / "out" / "last")
    assert reloaded.config.text.weights_from_package is False
    packaged = BertModel.from_pretrained(str(text_dir)).state_dict()
    trained = trainer.model.text_tower.encoder.state_dict()
    changed = [k for k in packaged if not torch.equal(packaged[k], trained[k])]
    assert changed
    for key in changed:
        assert torch.equal(reloaded.text_tower.encoder.state_dict()[key], trained[key]), key


def test_worker_processes_and_ranks_draw_the_same_samples(tmp_path, tiny_config_dict, manifests, sounds45,
                                                          write_run_config):
    """Per-sample seeding: batches do not depend on data.num_workers, and two ranks split one epoch."""
    from training.data_setup import build_data, read_manifests, train_loader
    from training.distributed import Runtime

    path = write_run_config(tmp_path / "run.yaml", tiny_config_dict, manifests, sounds45, tmp_path / "out",
                            augment={"mix_prob": 0.5})
    config = load_config(path)
    bundle = build_data(config, read_manifests(config), 16000, 1.0, progress=False)
    bundle.train.set_epoch(3)

    def epoch(workers: int, rank: int = 0, world: int = 1):
        config.data.num_workers = workers
        loader, sampler = train_loader(bundle.train, config, Runtime(torch.device("cpu"), rank, world))
        sampler.set_epoch(3)
        return list(loader)

    single, workers = epoch(0), epoch(2)
    assert len(single) == len(workers) == 3
    for (w1, c1, i1), (w2, c2, i2) in zip(single, workers):
        assert torch.equal(w1, w2) and c1 == c2 and torch.equal(i1, i2)
    shards = [torch.cat([i for _, _, i in epoch(0, rank, 2)]) for rank in (0, 1)]
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


@pytest.mark.slow
def test_finetune_from_an_msclap_2022_checkpoint(tmp_path, msclap_checkpoint, manifests, sounds45,
                                                 write_run_config):
    """Microsoft's layout (seeded random weights here: the real file cannot be downloaded offline)
    loads through clap_core and fine-tunes; frozen CNN14 and BERT stay as they were."""
    path = write_run_config(tmp_path / "run.yaml", {}, manifests, sounds45, tmp_path / "out",
                            train={"epochs": 1, "eval_batch_size": 8}, data={"clip_seconds": 1.0, "zeroshot": None})
    config = load_config(path, ["model.config=null", f"model.weights={msclap_checkpoint}",
                                "model.audio_tower=frozen", "model.text_tower=frozen"])
    trainer = Trainer(config, setup_runtime("cpu"))
    trainer.fit()
    from safetensors.torch import load_file

    start = load_checkpoint(msclap_checkpoint).state_dict()
    after = trainer.model.state_dict()
    frozen = [k for k in start if k.startswith(("audio_tower.", "text_tower."))]
    assert frozen and all(torch.equal(start[k], after[k]) for k in frozen)
    assert not torch.equal(start["audio_projection.linear1.weight"], after["audio_projection.linear1.weight"])
    saved = load_file(str(tmp_path / "out" / "last" / "model.safetensors"))
    assert saved.keys() == after.keys() and all(torch.equal(saved[k], after[k]) for k in after)
    assert '"name": "msclap-2022"' in (tmp_path / "out" / "last" / "config.json").read_text()


@pytest.mark.slow
def test_finetune_the_default_model_text_side(tmp_path, manifests, sounds45, write_run_config):
    """The shipped default model (YAMNet + MiniLM from packages) fine-tunes its text tower, and the
    checkpoint then stores the trained MiniLM instead of pointing at the package."""
    from clap_core.errors import CheckpointError
    from clap_core.weights_registry import resolve_weights

    try:
        resolve_weights("default")
    except CheckpointError as exc:
        pytest.skip(f"the default model is not built in this checkout: {exc}")
    path = write_run_config(tmp_path / "run.yaml", {}, manifests, sounds45, tmp_path / "out",
                            train={"epochs": 1}, data={"clip_seconds": 1.0, "zeroshot": None})
    config = load_config(path, ["model.config=null", "model.weights=default", "model.text_tower=trainable",
                                "optim.tower_lr=1e-5"])
    shipped_texts = len(text_gates(load_torch_model("default").text_projection)[0].texts)
    trainer = Trainer(config, setup_runtime("cpu"))
    before = {k: v.clone() for k, v in trainer.model.text_tower.state_dict().items()}
    trainer.fit()
    saved = load_checkpoint(tmp_path / "out" / "last")
    assert saved.config.text.weights_from_package is False and saved.config.audio.kind == "yamnet"
    # the gate now also speaks for this run's captions: fine-tuning is heard for them afterwards
    captions = sorted({t for c in read_manifests(config).train for t in c.captions})
    (gate,) = text_gates(saved.text_projection)
    assert len(gate.texts) == shipped_texts + len(captions)
    with torch.no_grad():
        assert torch.all(gate(saved.text_tower(captions[:4])) == 1.0)
    after = saved.text_tower.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(after[k], v) for k, v in trainer.model.text_tower.state_dict().items())


@pytest.mark.slow
def test_finetune_from_an_msclap_2023_checkpoint(tmp_path, ms23, manifests, sounds45, write_run_config, monkeypatch):
    """training/train.py on the 2023 layout (HTS-AT + GPT-2, random weights of the real size) by
    registered name: projections and logit scale learn, frozen towers stay as they were, and the saved
    checkpoint reloads through load_torch_model with exactly the trained weights. One epoch of
    2 steps on 7-s clips (the model's own length)."""
    monkeypatch.setenv("CLAP_WEIGHTS_DIR", str(ms23[2].parent))
    tiny = dict(manifests)
    for name in ("train", "val"):
        lines = manifests[name].read_text().splitlines()
        tiny[name] = tmp_path / manifests[name].name
        tiny[name].write_text("\n".join(lines[:9] if name == "train" else lines[:2]) + "\n")
    path = write_run_config(tmp_path / "run.yaml", {}, tiny, sounds45, tmp_path / "out",
                            train={"epochs": 1, "eval_batch_size": 2, "eval_first": False}, data={"zeroshot": None})
    assert main(["--config", str(path), "--set", "model.config=null", "--set", "model.weights=msclap-2023",
                 "--set", "model.audio_tower=frozen", "--set", "model.text_tower=frozen"]) == 0
    start = ms23[1].state_dict()
    saved = load_torch_model(tmp_path / "out" / "last")
    assert saved.config.name == "msclap-2023" and saved.clip_seconds == 7.0
    after = saved.state_dict()
    assert after.keys() == start.keys()
    frozen = [k for k in start if k.startswith(("audio_tower.", "text_tower."))]
    assert frozen and all(torch.equal(start[k], after[k]) for k in frozen)
    learned = [k for k in start if k not in frozen]
    assert learned and all(not torch.equal(start[k], after[k]) for k in learned if k.endswith("weight")), learned


@pytest.mark.slow
def test_laion_weights_are_refused_in_one_line(tmp_path, laion, manifests, sounds45, write_run_config, capsys):
    """LAION-CLAP folders load everywhere else, but training has no frozen/trainable towers for them:
    one line saying so (was: an AttributeError traceback from set_trainable)."""
    path = write_run_config(tmp_path / "run.yaml", {}, manifests, sounds45, tmp_path / "out", train={"epochs": 1})
    weights = laion[2] / "laion--clap-htsat-unfused"
    assert main(["--config", str(path), "--set", "model.config=null", "--set", f"model.weights={weights}"]) == 2
    err = capsys.readouterr().err  # (besides transformers' "Loading weights" bar)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "LaionClapModel (LAION-CLAP) cannot be fine-tuned" in errors[0], err
    assert "Traceback" not in err
