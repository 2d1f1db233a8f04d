"""Caption training recipe, SCST and the `captioner train` dispatcher on tiny scene worlds."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from captioner import Captioner
from captioner.cli import train as train_cli
from captioner.decoders import CaptionDecoder
from captioner.pipelines import runstate
from captioner.pipelines import train_captioner as tc
from captioner.pipelines.config import parse_config
from captioner.pipelines.scst import CiderD
from captioner.text import tokenize

SPEC = "scenes:16?num_eval=4&image_size=48"
TINY = ["--encoder", "mobilenet_v3_small", "--encoder-weights", "none", "--embed-dim", "24",
        "--hidden-dim", "48", "--attention-dim", "16", "--device", "cpu", "--beam-size", "2",
        "--plot-every", "0", "--max-length", "12", "--dropout", "0.0"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny captioner trained through `captioner train caption` (shared by tests)."""
    root = tmp_path_factory.mktemp("caption")
    mp = pytest.MonkeyPatch()
    mp.setenv("CAPTIONER_CACHE", str(root / "cache"))
    out = root / "model"
    argv = ["caption", "--dataset", SPEC, "--out", str(out), "--epochs", "4",
            "--batch-size", "8", "--lr", "0.01", "--warmup", "0", *TINY]  # fmt: skip
    assert train_cli.main(argv) == 0
    yield out
    mp.undo()


@pytest.mark.slow
def test_training_lowers_the_loss_and_writes_a_loadable_model(trained):
    records = runstate.read_metrics(trained / "run" / "metrics.jsonl")
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 0.5
    for key in ("CIDEr-D", "BLEU-4", "ROUGE-L", "scene_f1"):
        assert all(0.0 <= r[key] for r in epochs), key
    best = max(epochs, key=lambda r: r["CIDEr-D"])
    assert epochs[-1]["best_epoch"] == best["epoch"]
    run_config = json.loads((trained / "run" / "config.json").read_text())
    assert run_config["dataset"] == SPEC and run_config["train"]["epochs"] == 4
    model = Captioner.from_pretrained(trained, device="cpu")
    assert model.decoder.config.hidden_dim == 48 and model.encoder.name == "mobilenet_v3_small"
    assert model.name == "model" and model.max_length == 12
    assert model.training_data == [SPEC] and SPEC in (trained / "README.md").read_text()  # card
    best_dir = load_file(str(trained / "run" / "best" / "model.safetensors"))
    out_dir = load_file(str(trained / "model.safetensors"))
    assert all(torch.equal(best_dir[k], out_dir[k]) for k in out_dir)
    image = torch.rand(3, 64, 64)
    caption = model.caption(image, beam_size=2)[0]
    assert isinstance(caption, str) and len(caption.split()) <= 12


def test_validation_decodes_for_real_never_teacher_forced(tmp_path, monkeypatch):
    from captioner.data.scenes import build_scene_dataset

    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))
    cfg = parse_config(
        tc.CaptionTrainConfig, ["--dataset", "scenes", "--out", str(tmp_path), *TINY]
    )
    prep = tc.prepare(
        cfg, torch.device("cpu"), build_scene_dataset(num_train=4, num_eval=3, image_size=48)
    )
    model = tc.CaptionModel(tc.build_decoder(cfg, prep.vocab, prep.encoder.out_channels))

    def no_teacher_forcing(*args, **kwargs):
        raise AssertionError("validation called the teacher-forced forward")

    monkeypatch.setattr(CaptionDecoder, "forward", no_teacher_forcing)
    scores = tc.validate(prep, model, torch.device("cpu"))
    assert {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D", "scene_f1"} <= set(scores)


def test_config_file_then_flags_override(tmp_path):
    toml = tmp_path / "caption.toml"
    toml.write_text('dataset = "scenes"\nout = "m"\nepochs = 7\ncell = "gru"\nbatch-size = 5\n')
    cfg = parse_config(tc.CaptionTrainConfig, ["--config", str(toml), "--epochs", "2"])
    assert (cfg.epochs, cfg.cell, cfg.batch_size, cfg.dataset) == (2, "gru", 5, "scenes")
    assert cfg.hidden_dim == tc.CaptionTrainConfig.hidden_dim  # untouched default
    js = tmp_path / "caption.json"
    js.write_text(json.dumps({"train": {"dataset": "tuxpaint", "out": "x", "lr": 1}}))
    cfg = parse_config(tc.CaptionTrainConfig, ["--config", str(js), "--no-resume"])
    assert cfg.dataset == "tuxpaint" and cfg.lr == 1.0 and isinstance(cfg.lr, float)


@pytest.mark.parametrize(
    "text, message",
    [
        ('dataset = "scenes"\nout = "m"\nepochz = 3\n', "unknown setting 'epochz'"),
        ('dataset = "scenes"\nout = "m"\nepochs = "three"\n', "epochs: expected int"),
        ('dataset = "scenes"\nout = "m"\ncell = "transformer"\n', "'transformer' is not one of"),
        ('out = "m"\n', "--dataset is required"),
        ("dataset = [unclosed\n", "malformed TOML"),
    ],
)
def test_config_errors_name_the_file_and_key(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        parse_config(tc.CaptionTrainConfig, ["--config", str(path)], prog="captioner train caption")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    if "required" not in message and "not one of" not in message:
        assert str(path) in err


def test_end_to_end_training_moves_only_the_unfrozen_encoder_blocks(tmp_path, monkeypatch):
    from captioner.data.scenes import build_scene_dataset

    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "e2e"
    cfg = parse_config(tc.CaptionTrainConfig, ["--dataset", "scenes", "--out", str(out), *TINY,
                       "--trainable-blocks", "1", "--epochs", "1", "--batch-size", "5",
                       "--encoder-lr", "0.01", "--eval-limit", "2"])  # fmt: skip
    torch.manual_seed(0)
    tc.train(cfg, dataset=build_scene_dataset(num_train=2, num_eval=2, image_size=48))
    from captioner.encoders import build_encoder
    from captioner.pipelines.runstate import seed_everything

    seed_everything(cfg.seed)
    fresh = build_encoder("mobilenet_v3_small", weights=None)
    model = Captioner.from_pretrained(out, device="cpu", backend="torch")  # its blocks
    saved = json.loads((out / "config.json").read_text())
    assert saved["encoder"]["trainable_blocks"] == 1
    assert any(k.startswith("encoder.") for k in load_file(str(out / "model.safetensors")))
    last, first = fresh.blocks[-1], fresh.blocks[0]
    trained_blocks = model.encoder.blocks
    assert any(not torch.equal(a, b) for a, b in
               zip(last.parameters(), trained_blocks[-1].parameters()))  # fmt: skip
    assert all(torch.equal(a, b) for a, b in
               zip(first.parameters(), trained_blocks[0].parameters()))  # fmt: skip


@pytest.mark.slow
def test_scst_fine_tunes_and_writes_a_model(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_CACHE", str(trained.parent / "cache"))
    out = tmp_path / "scst"
    tiny = ["--device", "cpu", "--beam-size", "2", "--plot-every", "0", "--max-length", "12"]
    argv = ["scst", "--init", str(trained), "--dataset", SPEC, "--out", str(out),
            "--epochs", "2", "--batch-size", "8", "--lr", "0.005", "--samples", "3", *tiny]  # fmt: skip
    assert train_cli.main(argv) == 0
    steps = [r for r in runstate.read_metrics(out / "run/metrics.jsonl") if r["type"] == "step"]
    assert len(steps) == 4 and all("reward" in r and "baseline" in r for r in steps)
    assert all(r["reward"] >= 0 and r["grad_norm"] > 0 for r in steps)
    model = Captioner.from_pretrained(out, device="cpu")
    assert model.vocab.itos == Captioner.from_pretrained(trained, device="cpu").vocab.itos
    run_config = json.loads((out / "run/config.json").read_text())
    assert run_config["recipe"] == "caption-scst" and run_config["train"]["lr"] == 0.005


def test_scst_recipe_settings(tmp_path, capsys):
    """SCST has its own flags: --init is required, --lr defaults to 5e-5 (never replaced
    silently), a trainable encoder is refused with one line, and the caption recipe has no
    --scst any more."""
    from captioner.pipelines import train_scst

    base = ["--dataset", SPEC, "--out", str(tmp_path / "out")]
    cfg = parse_config(train_scst.ScstTrainConfig, [*base, "--init", "m"])
    assert cfg.lr == 5e-5 and cfg.trainable_blocks == 0 and cfg.baseline == "greedy"
    assert (
        parse_config(train_scst.ScstTrainConfig, [*base, "--init", "m", "--lr", "1e-3"]).lr == 1e-3
    )
    with pytest.raises(SystemExit):
        train_scst.main(base)  # no --init
    assert "--init is required" in capsys.readouterr().err
    assert train_scst.main([*base, "--init", "m", "--trainable-blocks", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trainable-blocks 2: SCST keeps the encoder frozen" in err[0]
    assert train_scst.main([*base, "--init", "m", "--baseline", "mean", "--samples", "1"]) == 2
    assert train_scst.main([*base, "--init", "m", "--candidates", "beam", "--samples", "1"]) == 2
    assert "--samples 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tc.main([*base, "--scst", "--init", "m"])
    assert "unrecognized arguments: --scst --init" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cider_d_reward_matches_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider

    refs = [["a red circle left of a blue square", "a small red circle and a blue square"],
            ["two green stars", "two small green stars on a plain background"],
            ["a yellow triangle above a black cross", "a black cross below a yellow triangle"]]  # fmt: skip
    hyps = ["a red circle left of a square", "two green stars", "cross"]  # 1 word: no bigram
    cider = CiderD(refs)
    mine = [cider.score(i, tokenize(h)) for i, h in enumerate(hyps)]
    gts = {i: [" ".join(tokenize(r)) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(tokenize(h))] for i, h in enumerate(hyps)}
    mean, per_image = Cider().compute_score(gts, res)
    assert mine == pytest.approx(list(per_image), abs=1e-9)
    assert sum(mine) / 3 == pytest.approx(mean, abs=1e-9)
    assert mine[1] > mine[2]


def test_train_dispatcher_usage_and_unknown_recipe(capsys):
    assert train_cli.main([]) == 2
    assert train_cli.main(["--help"]) == 0
    assert "caption" in capsys.readouterr().out
    assert train_cli.main(["teleport"]) == 2
    assert "unknown recipe 'teleport'" in capsys.readouterr().err


def test_scst_mean_baseline_is_leave_one_out():
    from captioner.pipelines.scst import scst_loss_fn
    from captioner.text import Vocabulary

    refs = [["a red circle", "a small red circle"], ["two blue stars", "two stars"]]
    vocab = Vocabulary.build([c for r in refs for c in r])
    cfg = parse_config(tc.CaptionTrainConfig, ["--dataset", "x", "--out", "y", *TINY])
    model = tc.CaptionModel(tc.build_decoder(cfg, vocab, feature_dim=8))
    batch = {"grid": torch.randn(2, 4, 8), "image_index": torch.tensor([0, 1])}
    loss_fn = scst_loss_fn(CiderD(refs), vocab, samples=4, max_length=6, baseline="mean")
    loss, logs = loss_fn(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.decoder.embed.weight.grad is not None
    assert logs["baseline"] == pytest.approx(logs["reward"])  # mean of leave-one-out means
    with pytest.raises(ValueError, match="samples >= 2"):
        scst_loss_fn(CiderD(refs), vocab, samples=1, max_length=6, baseline="mean")


def test_scst_beam_candidates_are_the_k_best_beams(monkeypatch):
    """--candidates beam: the captions scored are the K best of a beam search of width K
    (what inference returns), not samples; their leave-one-out mean is the baseline."""
    from captioner.pipelines import scst
    from captioner.text import Vocabulary

    refs = [["a red circle", "a small red circle"], ["two blue stars", "two stars"]]
    vocab = Vocabulary.build([c for r in refs for c in r])
    cfg = parse_config(tc.CaptionTrainConfig, ["--dataset", "x", "--out", "y", *TINY])
    model = tc.CaptionModel(tc.build_decoder(cfg, vocab, feature_dim=8))
    seen, original = [], scst.generate

    def recording(*args, **kw):
        seen.append((args[3], kw, original(*args, **kw)))
        return seen[-1][2]

    monkeypatch.setattr(scst, "generate", recording)
    batch = {"grid": torch.randn(2, 4, 8), "image_index": torch.tensor([0, 1])}
    loss_fn = scst.scst_loss_fn(CiderD(refs), vocab, samples=3, max_length=6, baseline="mean",
                                candidates="beam")  # fmt: skip
    loss, logs = loss_fn(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.decoder.embed.weight.grad is not None
    ((config, kw, drawn),) = seen
    assert config.method == "beam" and config.beam_size == 3 and kw == {"n_best": 3}
    assert len(drawn.tokens) == 6 and logs["baseline"] == pytest.approx(logs["reward"])
    with pytest.raises(ValueError, match="candidates must be 'sample' or 'beam'"):
        scst.scst_loss_fn(CiderD(refs), vocab, samples=3, max_length=6, candidates="topk")


def test_scst_policy_never_samples_unk_or_ends_on_a_dangling_word(monkeypatch):
    """The SCST policy searches as inference does: <unk> banned, no <end> after "a"."""
    from captioner.pipelines import scst
    from captioner.text import Vocabulary

    refs = [["a red circle", "a small red circle"], ["two blue stars", "two stars"]]
    vocab = Vocabulary.build([c for r in refs for c in r])
    cfg = parse_config(tc.CaptionTrainConfig, ["--dataset", "x", "--out", "y", *TINY])
    model = tc.CaptionModel(tc.build_decoder(cfg, vocab, feature_dim=8))
    with torch.no_grad():  # a policy that loves <unk>, then "a" followed by <end>
        model.decoder.out.bias[vocab.unk_id] = 30.0
        model.decoder.out.bias[vocab.stoi["a"]] = 20.0
        model.decoder.out.bias[vocab.eos_id] = 19.0
    seen, original = [], scst.generate

    def recording(*args):
        seen.append(original(*args))
        return seen[-1]

    monkeypatch.setattr(scst, "generate", recording)
    batch = {"grid": torch.randn(2, 4, 8), "image_index": torch.tensor([0, 1])}
    loss, _ = scst.scst_loss_fn(CiderD(refs), vocab, samples=5, max_length=6)(model, batch)
    assert torch.isfinite(loss) and len(seen) == 2  # the samples and the greedy baseline
    for out in seen:
        assert all(vocab.unk_id not in t for t in out.tokens)
        assert all(not t or t[-1] != vocab.stoi["a"] for t in out.tokens)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "flickr8k:{tmp}/missing"], "no Flickr8k.token.txt"),
    ],
)
def test_bad_settings_exit_2_with_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert tc.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("captioner train caption: ") and message in err[-1]
    assert not (tmp_path / "out" / "model.safetensors").exists()
