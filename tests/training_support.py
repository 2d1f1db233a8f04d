"""Tiny training set-ups shared by test modules in different folders (no tests here): a
synthetic regression task for the training engine, a separable sentiment corpus for the
sentiment recipe, and a stand-in encoder with a small caption dataset for the feature cache."""

from __future__ import annotations

import io
import random

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

from captioner.data.common import CaptionRecord, DataReport, build_caption_dict
from captioner.pipelines import train_sentiment as ts
from captioner.pipelines.trainer import TrainConfig, Trainer

# The training engine (tests/pipelines/test_trainer.py, tests/attacks/test_attacks_runs.py)


def regression_data(n: int = 64, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 3.0, 0.5]) + 0.05 * torch.randn(n, generator=g)
    return TensorDataset(x, y)


def mse_loss(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x).squeeze(-1), y)


def tiny_trainer(tmp_path, **overrides) -> Trainer:
    kw = {k: overrides.pop(k) for k in list(overrides) if k not in TrainConfig.__dataclass_fields__}
    base = {"epochs": 4, "batch_size": 8, "lr": 0.05, "device": "cpu", "plot_every": 0}
    cfg = TrainConfig(**{**base, **overrides})
    torch.manual_seed(0)
    model = kw.pop("model", None) or nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    return Trainer(model=model, config=cfg, train_dataset=kw.pop("data", regression_data()),
                   loss_fn=kw.pop("loss_fn", mse_loss), run_dir=tmp_path / "run", **kw)  # fmt: skip


# The sentiment recipe (tests/pipelines/test_train_sentiment.py, tests/data/test_vectors.py)

POSITIVE = ["good", "great", "lovely", "excellent", "fine"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "broken"]
FILLER = ["the", "phone", "was", "really", "movie", "food", "service", "quite", "very", "it"]


def sentence(rng: random.Random, label: int) -> str:
    words = rng.sample(FILLER, 4) + [rng.choice(POSITIVE if label else NEGATIVE)]
    rng.shuffle(words)
    return " ".join(words)


def corpus(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    labels = [i % 2 for i in range(n)]
    return [sentence(rng, y) for y in labels], labels


def toy_dataset(n_train: int = 160, n_eval: int = 40) -> DatasetDict:
    features = Features(
        {"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])}
    )
    out = DatasetDict()
    for split, n, seed in (("train", n_train, 0), ("validation", n_eval, 1), ("test", n_eval, 2)):
        texts, labels = corpus(n, seed)
        out[split] = Dataset.from_dict({"text": texts, "label": labels}, features=features)
    return out


def tiny_config(out, **kw) -> ts.SentimentTrainConfig:
    settings = dict(
        out=str(out),
        embed_dim=32,
        hidden_dim=32,
        dropout=0.1,
        word_dropout=0.0,
        label_smoothing=0.0,
        neutral="",
        epochs=6,
        batch_size=16,
        lr=1e-2,
        warmup=0.0,
        patience=0,
        device="cpu",
        seed=0,
        plot_every=0,
    )
    settings.update(kw)
    return ts.SentimentTrainConfig(**settings)


# The feature cache (tests/data/test_features.py, tests/pipelines/test_train_progress.py)


class FeatureEncoder(nn.Module):
    """A stand-in with the Encoder interface; counts forward calls."""

    name, weights, out_channels, image_size = "tiny/enc", None, 4, 16

    def __init__(self, cache_key="tiny|random|resize16"):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, kernel_size=4, stride=4)
        self.cache_key, self.calls = cache_key, 0
        self.requires_grad_(False)  # frozen, as an encoder whose features are cached

    def transform(self, img):
        a = np.asarray(img.convert("RGB").resize((16, 16)), dtype=np.float32) / 255.0
        return torch.from_numpy(a).permute(2, 0, 1)  # (3, 16, 16)

    def forward(self, images):
        self.calls += 1
        grid = self.conv(images).flatten(2).transpose(1, 2)  # (B, 16, 4)
        return grid, grid.mean(1)  # (B, N, C), (B, C)


def png_bytes(color):
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), color).save(buf, format="PNG")
    return buf.getvalue()


def make_dataset(n=5):
    records = {
        "train": [
            CaptionRecord(png_bytes((40 * i, 255 - 40 * i, 90)), [f"caption {i}", "x"], f"id{i}")
            for i in range(n)
        ],
        "test": [CaptionRecord(png_bytes((1, 2, 3)), ["only one"], "t0")],
    }
    return build_caption_dict(records, DataReport(source="test"))
