from __future__ import annotations

import json

import pytest
import torch

from toolchain.errors import CheckpointError
from toolchain.train.loop import Hooks, TrainConfig, fit, lr_at

CFG = dict(batch_size=8, lr=0.05, warmup_epochs=0.5, seed=0, device="cpu", eval_batch_size=32)


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_lr_schedule_warms_up_then_decays_to_min():
    lrs = [lr_at(s, 100, 10, 1.0, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_fit_writes_checkpoint_and_history_and_is_deterministic(parts, tmp_path):
    make_model, train_ds, val = parts
    r1 = fit(make_model(), train_ds, val, TrainConfig(epochs=2, **CFG), tmp_path / "a")
    r2 = fit(make_model(), train_ds, val, TrainConfig(epochs=2, **CFG), tmp_path / "b")
    assert _same(r1.model, r2.model)
    assert [h["epoch"] for h in r1.history] == [1, 2] and all(0 <= h["val_eer"] <= 1 for h in r1.history)
    assert r1.best_val_eer == min(h["val_eer"] for h in r1.history)
    assert r1.model.head.out_features == train_ds.num_classes
    state = json.loads((tmp_path / "a" / "checkpoint.json").read_text())
    assert state["epoch"] == 2 and (tmp_path / "a" / "checkpoint.safetensors").is_file()


def test_resume_of_a_finished_run_returns_its_best_model(parts, tmp_path):
    make_model, train_ds, val = parts
    done = fit(make_model(), train_ds, val, TrainConfig(epochs=2, **CFG), tmp_path)
    again = fit(make_model(), train_ds, val, TrainConfig(epochs=2, **CFG), tmp_path, resume=True)
    assert _same(done.model, again.model) and again.best_epoch == done.best_epoch


class _Interrupt(Hooks):
    def before_epoch(self, model, epoch):
        if epoch == 1:
            raise KeyboardInterrupt


def test_resume_after_interruption_matches_uninterrupted(parts, tmp_path):
    make_model, train_ds, val = parts
    full = fit(make_model(), train_ds, val, TrainConfig(epochs=2, **CFG), tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), train_ds, val, TrainConfig(epochs=2, **CFG), tmp_path / "cut", hooks=_Interrupt())
    resumed = fit(make_model(), train_ds, val, TrainConfig(epochs=2, **CFG), tmp_path / "cut", resume=True)
    assert _same(full.model, resumed.model)
    assert [h["val_eer"] for h in resumed.history] == [h["val_eer"] for h in full.history]


class _InterruptAt(Hooks):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def before_epoch(self, model, epoch):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_costly_checkpoints_are_skipped_and_resume_is_still_exact(parts, tmp_path, monkeypatch):
    """checkpoint_overhead: a checkpoint costing more than that fraction of the training since the last one is
    skipped (first and last epochs always write); an interrupted run resumes exactly from the older one."""
    from toolchain.train import checkpoint as ckpt

    make_model, train_ds, val = parts
    written: list[int] = []
    real = ckpt.save_checkpoint
    monkeypatch.setattr(ckpt, "save_checkpoint", lambda d, t, s: (written.append(s["epoch"]), real(d, t, s))[1])
    # any write is "cheap" (a bound, not a timing: under load even a tiny model's write can cost 10 % of its epoch)
    cheap = TrainConfig(epochs=3, checkpoint_overhead=1e9, **CFG)
    full = fit(make_model(), train_ds, val, cheap, tmp_path / "full")
    assert written == [1, 2, 3]
    written.clear()
    costly = TrainConfig(epochs=3, checkpoint_overhead=1e-9, **CFG)  # any write costs "too much"
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), train_ds, val, costly, tmp_path / "cut", hooks=_InterruptAt(2))
    assert written == [1]  # epoch 2's was skipped
    state = json.loads((tmp_path / "cut" / "checkpoint.json").read_text())
    assert state["epoch"] == 1 and state["best_epoch"] == 1
    resumed = fit(make_model(), train_ds, val, costly, tmp_path / "cut", resume=True)
    assert written == [1, 2, 3]  # the resumed run's first epoch (2) and its last (3)
    assert _same(full.model, resumed.model) and resumed.best_epoch == full.best_epoch
    assert [h["val_eer"] for h in resumed.history] == [h["val_eer"] for h in full.history]


def test_resume_refuses_changed_settings_and_torn_checkpoints(parts, tmp_path):
    make_model, train_ds, _ = parts
    fit(make_model(), train_ds, None, TrainConfig(epochs=1, **CFG), tmp_path)
    with pytest.raises(CheckpointError, match="lr"):
        fit(make_model(), train_ds, None, TrainConfig(epochs=2, **{**CFG, "lr": 0.01}), tmp_path, resume=True)
    (tmp_path / "checkpoint.safetensors").write_bytes((tmp_path / "checkpoint.safetensors").read_bytes()[:-8] + b"x" * 8)
    with pytest.raises(CheckpointError, match="does not match"):
        fit(make_model(), train_ds, None, TrainConfig(epochs=2, **CFG), tmp_path, resume=True)


class _PruneAndDistil(Hooks):
    """Hooks as the compression issue uses them: a mask kept by after_step, an extra loss with its own parameter."""

    ce_weight = 0.5

    def __init__(self):
        self.proj = torch.nn.Parameter(torch.zeros(1))
        self.epochs, self.steps, self.mask = [], 0, None

    def setup(self, model, device):
        w = model.trunk.conv1.weight
        self.mask = (torch.arange(w.shape[0]) % 2 == 0).float().view(-1, 1, 1, 1).to(device)

    def extra_parameters(self):
        return [self.proj]

    def before_epoch(self, model, epoch):
        self.epochs.append(epoch)

    def extra_loss(self, model, images, labels, features, logits):
        return {"kd": (features.mean() - 1.0 - self.proj).pow(2).squeeze()}

    def after_step(self, model):
        self.steps += 1
        with torch.no_grad():
            model.trunk.conv1.weight.mul_(self.mask)

    def state_dict(self):
        return {"mask": self.mask}


def test_hooks_are_called_and_their_effects_kept(parts, tmp_path):
    make_model, train_ds, _ = parts
    h = _PruneAndDistil()
    r = fit(make_model(), train_ds, None, TrainConfig(epochs=2, **CFG), tmp_path, hooks=h)
    assert h.epochs == [0, 1] and h.steps == 2 * (len(train_ds) // 8)
    w = r.model.trunk.conv1.weight
    assert torch.count_nonzero(w[1::2]) == 0 and torch.count_nonzero(w[0::2]) > 0
    assert h.proj.item() != 0.0  # optimized alongside the model
    assert all("loss_kd" in row for row in r.history)


def test_too_few_images_for_a_batch(parts, tmp_path):
    from toolchain.errors import DataError

    make_model, train_ds, _ = parts
    with pytest.raises(DataError, match="no full batch"):
        fit(make_model(), train_ds, None, TrainConfig(epochs=1, **{**CFG, "batch_size": 1000}), tmp_path)


class _CollapseInFirstEpoch(Hooks):
    """Zeroes every trunk weight after each step in epoch 1: constant features, as a network pruned to nothing."""

    def before_epoch(self, model, epoch):
        self.epoch = epoch

    def after_step(self, model):
        if self.epoch == 0:
            with torch.no_grad():
                for p in model.trunk.parameters():
                    p.zero_()


def test_unscorable_validation_counts_as_chance_and_training_goes_on(parts, tmp_path, caplog):
    make_model, train_ds, val = parts
    r = fit(make_model(), train_ds, val, TrainConfig(epochs=2, **CFG), tmp_path, hooks=_CollapseInFirstEpoch())
    assert r.history[0]["val_eer"] == 0.5 and len(r.history) == 2
    assert "validation EER counted as 50%" in caplog.text
