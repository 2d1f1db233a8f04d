"""CUDA checks of the training engine and of labeling, in one run (not a test: CI has no GPU).

    python bench/cuda_check.py            # on a machine with a CUDA GPU; prints JSON
    python bench/cuda_check.py small      # a seconds-long CPU dry run of the same code
    python bench/cuda_check.py label      # only check 4 (a few minutes), on the GPU
    python bench/cuda_check.py label-small  # check 4 as a CPU dry run

1. bf16 autocast training of a captioner-shaped model (decoder over synthetic lite0-sized
   grids) on CUDA: loss goes down; resume at an epoch boundary == uninterrupted run.
2. fp16 + GradScaler path runs, scaler state is checkpointed.
3. Throughput: decoder training steps/s (fp32 vs bf16) and efficientnet_lite0 (random init)
   feature extraction images/s; greedy / beam decoding of 500 grids.
4. Labeling 800x600 JPEGs at batch 128 with the bundled model (`bench/cuda_label.py`): nvJPEG
   decode + resize alone, the model alone on decoded images, and `captioner label` with JPEGs
   decoded on the GPU and on the CPU (target: >= 1,500 images/s on one H200).
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from captioner.data.caption_dataset import collate_captions  # noqa: E402
from captioner.decoders import CaptionDecoder, DecoderConfig, caption_loss  # noqa: E402
from captioner.evaluation import decode_grids  # noqa: E402
from captioner.pipelines import runstate  # noqa: E402
from captioner.pipelines.trainer import TrainConfig, Trainer  # noqa: E402
from captioner.text import Vocabulary  # noqa: E402

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
if MODE.startswith("label"):
    from cuda_label import label_check  # bench/, beside this file

    label_check(small=MODE == "label-small")
    sys.exit(0)
SMALL = MODE == "small"  # CPU dry run
DEV = "cpu" if SMALL else "cuda"
N_IMG, N, C = (16, 49, 64) if SMALL else (2000, 49, 1280)
V = 60 if SMALL else 1000
out = {}


class Synthetic(Dataset):
    """Captions that depend on the grid: word t = argmax of channel block t of the mean."""

    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.grid = torch.randn(n, N, C, generator=g).half()
        mean = self.grid.float().mean(1)  # (n, C)
        words = mean[:, : 8 * 7].reshape(n, 8, 7).argmax(-1) + 4 + torch.arange(8) * 7
        self.caps = [torch.tensor([1, *w.tolist(), 2]) for w in words]

    def __len__(self):
        return len(self.caps)

    def __getitem__(self, i):
        return {"grid": self.grid[i], "caption": self.caps[i], "image_index": i}


class Model(nn.Module):
    def __init__(self, hidden=512):
        super().__init__()
        self.decoder = CaptionDecoder(
            DecoderConfig(vocab_size=V, feature_dim=C, hidden_dim=hidden, dropout=0.3)
        )

    def forward(self, batch):
        g = batch["grid"].float()
        return self.decoder(g, g.mean(1), batch["captions"])


def loss_fn(model, batch):
    logits, alphas = model(batch)
    return caption_loss(logits, batch["captions"], alphas)


def trainer(run, **kw) -> Trainer:
    cfg = {"epochs": 3, "batch_size": 64, "lr": 1e-3, "device": DEV, "plot_every": 0, **kw}
    torch.manual_seed(0)
    return Trainer(
        model=Model(),
        config=TrainConfig(**cfg),
        train_dataset=Synthetic(N_IMG),
        loss_fn=loss_fn,
        collate_fn=collate_captions,
        run_dir=run,
    )


def fit(run, **kw):
    t = trainer(run, **kw)
    start = time.time()
    r = t.fit()
    return r, time.time() - start, t


tmp = Path(tempfile.mkdtemp())
r, sec, t = fit(tmp / "a")
recs = [x for x in runstate.read_metrics(tmp / "a/metrics.jsonl") if x["type"] == "epoch"]
out["bf16"] = {
    "amp_dtype": str(t.amp_dtype),
    "scaler": t.scaler.is_enabled(),
    "epoch_loss": [round(x["train_loss"], 4) for x in recs],
    "seconds": round(sec, 2),
}
fit(tmp / "b", stop_after=1)
torch.manual_seed(99)
fit(tmp / "b", resume=True)
wa = runstate.load_checkpoint(tmp / "a/checkpoints")[0]
wb = runstate.load_checkpoint(tmp / "b/checkpoints")[0]
out["resume_max_abs_diff"] = max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)
r, sec, t = fit(tmp / "c", amp="fp16", epochs=2)
st = torch.load(tmp / "c/checkpoints/epoch-0002/state.pt", weights_only=True)
out["fp16"] = {
    "scaler": t.scaler.is_enabled(),
    "scaler_state": bool(st["scaler"]),
    "train_loss": round(r.last_scores["train_loss"], 4),
    "seconds": round(sec, 2),
}

# throughput: decoder steps/s
for amp in ("off", "bf16"):
    for bs in (64, 256):
        tr = trainer(tmp / f"tp-{amp}-{bs}", epochs=1, batch_size=bs, amp=amp, log_every=1000)
        tr.fit()  # warm-up epoch
        if DEV == "cuda":
            torch.cuda.synchronize()
        start = time.time()
        steps = 0
        for batch in tr.loader:
            tr._train_step(batch)
            steps += 1
        if DEV == "cuda":
            torch.cuda.synchronize()
        out[f"steps_per_s_{amp}_bs{bs}"] = round(steps / (time.time() - start), 2)

# encoder feature extraction (random-init efficientnet_lite0: same compute as pretrained)
from captioner.encoders import build_encoder  # noqa: E402

enc = build_encoder("efficientnet_lite0", weights=None).to(DEV).eval()
x = torch.randn(32 if SMALL else 256, 3, 224, 224, device=DEV)
with torch.inference_mode(), torch.autocast(DEV, dtype=torch.float16, enabled=DEV == "cuda"):
    enc(x)
    if DEV == "cuda":
        torch.cuda.synchronize()
    start = time.time()
    for _ in range(1 if SMALL else 10):
        grid, _ = enc(x)
    if DEV == "cuda":
        torch.cuda.synchronize()
    out["lite0_images_per_s_fp16"] = round((1 if SMALL else 10) * x.size(0) / (time.time() - start))
out["lite0_grid"] = list(grid.shape)

# validation decoding speed
vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", *(f"w{i}" for i in range(V - 4))])
dec = t.model.decoder
grids = Synthetic(500 if not SMALL else 8).grid
for beam in (1, 3):
    start = time.time()
    caps = decode_grids(dec, vocab, grids, beam_size=beam, batch_size=100, device=DEV)
    out[f"decode_500_beam{beam}_s"] = round(time.time() - start, 2)
from cuda_label import label_check  # noqa: E402

out["label"] = label_check(small=SMALL)
out["device"] = torch.cuda.get_device_name() if DEV == "cuda" else "cpu"
out["torch"] = torch.__version__
print(json.dumps(out, indent=1))
Path(os.environ.get("OUT", tmp)).joinpath("cuda_check.json").write_text(json.dumps(out, indent=1))
