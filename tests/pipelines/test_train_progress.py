"""Training and feature caching show their progress (issue 25): a bar with loss, tokens/s and
ETA on a terminal, a log line every N steps elsewhere."""

from __future__ import annotations

import io
import logging
import re

import torch
from torch import nn
from torch.utils.data import Dataset

from captioner.pipelines.trainer import TrainConfig, Trainer, batch_tokens
from captioner.progress import StepProgress

log = logging.getLogger("test.progress")


def test_lines_every_n_steps_without_a_terminal(caplog):
    with caplog.at_level(logging.INFO, logger="test.progress"):
        p = StepProgress(desc="epoch 1/3", total=5, every=2, log=log, terminal=False)
        for step in range(5):
            p.update(1, tokens=100, loss=2.5 - step / 10)
        p.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "test.progress"]
    assert len(lines) == 3  # steps 2 and 4, then the end
    first, _, last = lines
    assert first.startswith("epoch 1/3  step 2/5 (40%)  loss 2.4  ")
    assert re.search(r"  [\d,]+ tok/s  [\d.]+ step/s  elapsed 0:\d\d  ETA 0:\d\d$", first)
    assert last.startswith("epoch 1/3  step 5/5 (100%)  loss 2.1  ")
    assert last.endswith("ETA 0:00")


def test_no_line_when_disabled_and_none_twice_at_the_end(caplog):
    with caplog.at_level(logging.INFO, logger="test.progress"):
        quiet = StepProgress(desc="x", total=4, every=1, log=log, terminal=False, enabled=False)
        for _ in range(4):
            quiet.update(1, tokens=3, loss=1.0)
        quiet.close()
        exact = StepProgress(desc="y", total=4, every=2, log=log, terminal=False)
        for _ in range(4):
            exact.update(1)
        exact.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "test.progress"]
    assert [line.split("  ")[:2] for line in lines] == [["y", "step 2/4 (50%)"],
                                                       ["y", "step 4/4 (100%)"]]  # fmt: skip
    assert "tok/s" not in lines[0]  # a loop that counts no tokens shows none


def test_bar_on_a_terminal_shows_loss_tokens_per_second_and_eta():
    out = io.StringIO()
    p = StepProgress(desc="epoch 2/10", total=4, every=1, log=log, terminal=True, file=out)
    for _ in range(4):
        p.update(1, tokens=640, loss=1.23456, gnorm=0.5)
    p.close()
    text = out.getvalue()
    final = text.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("epoch 2/10: 100%")
    assert "4/4 [" in final and "<00:00" in final  # elapsed<ETA, as tqdm writes it
    assert "loss=1.235" in final and "gnorm=0.5" in final
    assert re.search(r"[\d,]+ tok/s\]$", final)


class Captions(Dataset):
    """Batches shaped like caption training: `captions` (B, T) with padding 0."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.full((3,), float(i)), "captions": torch.tensor([1, 5, 6, 2, 0, 0])}


def test_training_logs_progress_lines_when_not_on_a_terminal(tmp_path, caplog):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    cfg = TrainConfig(epochs=2, batch_size=2, lr=0.01, device="cpu", plot_every=0,
                      progress_every=4)  # fmt: skip
    trainer = Trainer(model=model, config=cfg, train_dataset=Captions(), run_dir=tmp_path / "run",
                      loss_fn=lambda m, batch: m(batch["x"]).pow(2).mean())  # fmt: skip
    with caplog.at_level(logging.INFO, logger="captioner.pipelines.trainer"):
        trainer.fit()  # pytest captures stderr: not a terminal
    lines = [r.getMessage() for r in caplog.records if "step/s" in r.getMessage()]
    assert [line.split("  ")[:2] for line in lines] == [
        ["epoch 1/2", "step 4/6 (67%)"], ["epoch 1/2", "step 6/6 (100%)"],
        ["epoch 2/2", "step 4/6 (67%)"], ["epoch 2/2", "step 6/6 (100%)"],
    ]  # fmt: skip
    assert all(" loss " in line and " gnorm " in line and " tok/s " in line for line in lines)


def test_batch_tokens_counts_the_text_a_batch_trains_on():
    captions = torch.tensor([[1, 5, 2, 0], [1, 2, 0, 0]])
    assert batch_tokens({"captions": captions, "grid": torch.zeros(2, 3)}) == 5
    assert batch_tokens({"src": captions, "lengths": torch.tensor([3, 2]), "tgt": captions}) == 5
    assert batch_tokens({"ids": captions, "lengths": torch.tensor([7, 4])}) == 11
    assert batch_tokens((torch.zeros(2, 3), torch.zeros(2))) is None  # images: no tokens


def test_feature_caching_shows_its_own_progress(tmp_path, caplog):
    from training_support import FeatureEncoder, make_dataset

    from captioner.data import compute_features

    with caplog.at_level(logging.INFO, logger="captioner.data.features"):
        compute_features(
            make_dataset(5)["train"], FeatureEncoder(), batch_size=2, cache_dir=tmp_path
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "captioner.data.features"]
    assert len(lines) == 1  # 5 images < a line every 20 batches: only the last
    assert lines[0].startswith("encoding images (tiny/enc)  img 5/5 (100%)  ")
