"""DistributedDataParallel through the engine: 2 CPU processes (gloo) with 4 items each give
the same parameters as 1 process with the combined batch of 8."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import TensorDataset

from captioner.pipelines import runstate
from captioner.pipelines.trainer import TrainConfig, Trainer


def _data() -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 5, generator=g)
    return TensorDataset(x, x @ torch.arange(1.0, 6.0) + torch.randn(8, generator=g))


def _fit(run_dir: str, batch_size: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 1))
    cfg = TrainConfig(epochs=2, batch_size=batch_size, lr=0.05, warmup=0, grad_clip=1.0,
                      device="cpu", plot_every=0)  # fmt: skip

    def loss_fn(m, batch):
        x, y = batch
        return nn.functional.mse_loss(m(x).squeeze(-1), y)

    Trainer(model=model, config=cfg, train_dataset=_data(), loss_fn=loss_fn,
            run_dir=run_dir).fit()  # fmt: skip


def _worker(rank: int, world: int, port: int, run_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))  # fmt: skip
    try:
        _fit(run_dir, batch_size=4)
    finally:
        runstate.shutdown_distributed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_equal_one_process_with_combined_batch(tmp_path):
    _fit(str(tmp_path / "single"), batch_size=8)
    # fork: the children inherit the imported modules (torch._dynamo, which the optimizer
    # imports, takes seconds; spawn would re-import everything)
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2,
                       start_method="fork")  # fmt: skip
    ddp = load_file(str(tmp_path / "ddp/checkpoints/epoch-0002/model.safetensors"))
    single = load_file(str(tmp_path / "single/checkpoints/epoch-0002/model.safetensors"))
    torch.manual_seed(0)
    start = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 1))
    assert ddp.keys() == single.keys()
    for k in single:
        assert torch.allclose(ddp[k], single[k], atol=1e-5), k
        assert not torch.allclose(single[k], dict(start.named_parameters())[k].detach())
    # only rank 0 wrote: one metrics file, with the loss averaged over both ranks
    rec = {name: [r for r in runstate.read_metrics(tmp_path / name / "metrics.jsonl")
                  if r["type"] == "epoch"] for name in ("ddp", "single")}  # fmt: skip
    assert [r["step"] for r in rec["ddp"]] == [1, 2]
    for a, b in zip(rec["ddp"], rec["single"]):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5
    state = torch.load(tmp_path / "ddp/checkpoints/epoch-0002/state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
