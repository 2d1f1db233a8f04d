"""GPU JPEG decoding's dispatch and fallbacks, driven on the CPU with an injected decoder."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from labeling_support import color_image, make_zoo, tiny_model
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from captioner.decoding import GenerationConfig
from captioner.encoders import ImageTransform
from captioner.imageio import plain_jpeg_bytes
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling import device_decode as dd
from captioner.labeling.engine import EngineOptions
from captioner.labeling.loader import load_batch

SPEC = ImageTransform(size=24, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
CPU = torch.device("cpu")


def cpu_nvjpeg(calls: list | None = None):
    """decode_jpeg on the CPU standing in for nvJPEG; records the batch sizes it gets."""

    def decode(data, device):
        if calls is not None:
            calls.append(len(data))
        return decode_jpeg(data, mode=ImageReadMode.RGB)

    return decode


def test_plain_jpeg_bytes_picks_what_a_gpu_decoder_takes(tmp_path):
    make_zoo(tmp_path)
    color_image(3).convert("L").save(tmp_path / "grey.jpg")
    assert plain_jpeg_bytes(tmp_path / "ok.jpg") == (tmp_path / "ok.jpg").read_bytes()
    assert plain_jpeg_bytes(tmp_path / "grey.jpg") is not None
    assert plain_jpeg_bytes(tmp_path / "ok.jpg", max_pixels=100) is None  # over the limit
    for name in ("cmyk.jpg", "rotated.jpg", "palette.png", "empty.jpg", "random.jpg",
                 "broken.jpg", "loop.jpg", "anim.gif"):  # fmt: skip
        assert plain_jpeg_bytes(tmp_path / name) is None, name


def test_jpegs_travel_as_bytes_the_rest_as_pixels(tmp_path):
    zoo = make_zoo(tmp_path)
    items = [(0, name) for name in sorted(zoo)]
    batch = load_batch([str(tmp_path)], items, SPEC, raw_jpegs=True)
    jpegs = {items[p][1] for p in batch.jpegs}
    assert {"ok.jpg", "truncated.jpg"} <= jpegs  # a torn JPEG's header still looks fine
    assert not jpegs & {"cmyk.jpg", "rotated.jpg", "palette.png", "anim.gif"}
    assert set(batch.ok).isdisjoint(batch.jpegs) and set(batch.errors).isdisjoint(batch.jpegs)


def test_device_rows_match_the_cpu_path_and_keep_batch_order(tmp_path):
    for i in range(5):
        color_image(i, (64, 48)).save(tmp_path / f"p{i}.jpg", quality=95)
    color_image(9).save(tmp_path / "x.png")
    items = [(0, n) for n in ("p0.jpg", "x.png", "p1.jpg", "p2.jpg", "p3.jpg", "p4.jpg")]
    cpu = load_batch([str(tmp_path)], items, SPEC)
    calls: list = []
    got = load_batch([str(tmp_path)], items, SPEC, raw_jpegs=True)
    dd.decode_on_device(got, folders=[str(tmp_path)], spec=SPEC, device=CPU,
                        max_pixels=10**8, decode=cpu_nvjpeg(calls))  # fmt: skip
    assert calls == [5]  # one batched call for the five JPEGs
    assert got.ok == cpu.ok == list(range(6)) and got.jpegs == {}
    assert got.pixels.dtype == torch.uint8 and got.pixels.shape == cpu.pixels.shape
    same = (got.pixels.float() - cpu.pixels.float()).abs().mean()
    other = (got.pixels.float() - cpu.pixels.roll(1, 0).float()).abs().mean()
    assert same < 8 and other > 3 * same  # the CPU path decodes at 1/2 scale (draft): close
    assert torch.equal(got.pixels[1], cpu.pixels[1])  # the PNG: decoded on the CPU as ever


def test_failures_fall_back_per_image_with_the_cpu_error_rows(tmp_path):
    zoo = make_zoo(tmp_path)
    items = [(0, name) for name in sorted(zoo)]
    cpu = load_batch([str(tmp_path)], items, SPEC)
    calls: list = []
    real = cpu_nvjpeg(calls)

    def flaky(data, device):  # nvJPEG refuses the torn file, and with it the whole batch
        out = real(data, device)
        if any(len(d) < len((tmp_path / "ok.jpg").read_bytes()) for d in data):
            raise RuntimeError("nvjpeg: bad data")
        return out

    got = load_batch([str(tmp_path)], items, SPEC, raw_jpegs=True)
    n = len(got.jpegs)
    dd.decode_on_device(got, folders=[str(tmp_path)], spec=SPEC, device=CPU,
                        max_pixels=10**8, decode=flaky)  # fmt: skip
    assert calls[0] == n and calls[1:] == [1] * n  # the batch, then one at a time
    assert got.errors == cpu.errors  # the same error text for every bad file
    assert got.ok == cpu.ok


def test_an_odd_decoder_result_goes_to_the_cpu_path(tmp_path):
    color_image(1, (64, 48)).save(tmp_path / "a.jpg")
    batch = load_batch([str(tmp_path)], [(0, "a.jpg")], SPEC, raw_jpegs=True)
    grey = lambda data, device: [torch.zeros(1, 48, 64, dtype=torch.uint8)]  # noqa: E731
    dd.decode_on_device(batch, folders=[str(tmp_path)], spec=SPEC, device=CPU,
                        max_pixels=10**8, decode=grey)  # fmt: skip
    cpu = load_batch([str(tmp_path)], [(0, "a.jpg")], SPEC)
    assert torch.equal(batch.pixels, cpu.pixels)


def test_label_pipeline_through_the_device_path_gives_the_same_rows(tmp_path, monkeypatch):
    zoo = make_zoo(tmp_path / "photos")
    for i in range(6):
        color_image(i, (64, 48)).save(tmp_path / "photos" / f"p{i}.jpg", quality=95)

    def run(out, gpu):
        eng = LabelEngine(
            tiny_model(), EngineOptions(backend="torch", generation=GenerationConfig(beam_size=2))
        )
        if gpu:
            monkeypatch.setattr(type(eng), "decodes_jpeg", property(lambda self: True))
            monkeypatch.setattr(dd, "nvjpeg_decode", cpu_nvjpeg(calls))
        opts = LabelOptions(out=tmp_path / out, workers=0, batch_size=4)
        assert label_folders([tmp_path / "photos"], eng, opts).total == len(zoo) + 6
        return [json.loads(x) for x in (tmp_path / out).read_text().splitlines()]

    calls: list = []
    cpu = run("cpu.jsonl", gpu=False)
    gpu = run("gpu.jsonl", gpu=True)
    assert calls  # the injected device decoder did run
    assert [(r["path"], r["error"]) for r in gpu] == [(r["path"], r["error"]) for r in cpu]
    assert all((r["caption"] is None) == (r["error"] is not None) for r in gpu)


def test_cpu_labeling_never_initialises_cuda(tmp_path):
    color_image(0).save(tmp_path / "a.jpg")
    eng = LabelEngine(tiny_model(), EngineOptions(backend="torch"))
    assert not eng.decodes_jpeg
    label_folders([tmp_path], eng, LabelOptions(workers=0))
    assert not torch.cuda.is_initialized()


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_resized_shape_and_dtype(mode):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).convert(mode).save(buf, "JPEG")
    img = decode_jpeg(torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8),
                      mode=ImageReadMode.RGB)  # fmt: skip
    out = dd._resized(img, SPEC)
    assert out.shape == (24, 24, 3) and out.dtype == torch.uint8
