"""The release recipe's bookkeeping: which training steps run, resume or are skipped."""

import pytest

from captioner.pipelines import release, steps


def test_interrupted_step_resumes_instead_of_shipping_its_best_epoch_so_far(tmp_path):
    step = tmp_path / "captioner"
    assert steps.resume_flag(step) == []  # nothing yet: train from scratch
    step.mkdir()
    (step / "config.json").write_text("{}")
    (step / "model.safetensors").write_bytes(b"")
    assert steps.resume_flag(step) is None  # a model without a run: use as is
    (step / "run" / "checkpoints").mkdir(parents=True)
    (step / "run" / "checkpoints" / "last.json").write_text('{"epoch": 3, "dir": "epoch-0003"}')
    # an interrupted run publishes its best epoch so far beside run/: it must resume
    assert steps.resume_flag(step) == ["--resume"]


def test_markdown_tables_hold_every_result_and_variant():
    results = {
        "scenes/test": {"n": 500, "decoding": {"method": "beam", "beam_size": 3},
                        "BLEU-4": 0.78, "CIDEr-D": 5.5, "scene_f1": 0.9},
        "uci-sentiment/test": {"n": 300, "accuracy": 0.81},
    }  # fmt: skip
    comparison = {
        "gru/soft": {
            "test": {"BLEU-4": 0.69, "CIDEr-D": 4.76, "scene_f1": 0.85},
            "test_novel": {"BLEU-4": 0.46, "CIDEr-D": 2.52, "scene_f1": 0.74},
        }
    }
    text = release.markdown(results, comparison)
    row = "| scenes/test | 500 | beam 3 | - | 0.780 | - | - | 5.500 | 0.900 | - | - | - | - |"
    assert row in text
    assert "| uci-sentiment/test | 300 | - | - | - | - | - | - | - | - | - | 0.810 | - |" in text
    assert "| gru/soft | 0.690 | 4.760 | 0.850 | 0.740 |" in text


def test_a_steps_thread_setting_does_not_leak_into_the_next(monkeypatch):
    import torch

    before = torch.get_num_threads()

    def recipe(argv):
        torch.set_num_threads(1)  # as train_sentiment's default --threads 1 does
        return 0

    try:
        torch.set_num_threads(2)
        steps.run_step("step", recipe, [])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_training_steps_get_fixed_seed_out_device_and_resume(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(steps, "run_step", lambda step, main, argv: calls.append((step, argv)))
    out = tmp_path / "compare-gru-none"
    (out / "run" / "checkpoints").mkdir(parents=True)
    (out / "run" / "checkpoints" / "last.json").write_text("{}")
    assert release.train_captioner(out, "scenes:10", ["--epochs", "1"], "cpu", cell="gru",
                                   attention="none") == out  # fmt: skip
    quick = release.QUICK_SENTIMENT  # --quick's tiny settings reach the sentiment step
    data = tmp_path / "data"  # the sentiment step reads SST-2 and Flickr8k captions there
    for need in ("sst2/train.tsv", "flickr8k/Flickr8k.token.txt"):
        (data / need).parent.mkdir(parents=True, exist_ok=True)
        (data / need).write_text("")
    assert release.train_sentiment(tmp_path, "cpu", quick, data=data) == tmp_path / "sentiment"
    (step, argv), (sstep, sargv) = calls
    assert step == "captioner gru/none" and sstep == "sentiment"
    flags = dict(zip(argv[::2], argv[1::2]))
    assert flags == {"--dataset": "scenes:10", "--cell": "gru", "--attention": "none",
                     "--name": "compare-gru-none", "--epochs": "1", "--out": str(out),
                     "--seed": str(steps.SEED), "--device": "cpu"}  # fmt: skip
    assert argv[-1] == "--resume" and "--resume" not in sargv
    assert sargv[:4] == ["--dataset", f"sst2:{data / 'sst2'}",
                         "--neutral", f"flickr8k:{data / 'flickr8k'}+scenes:2000"]  # fmt: skip
    assert "--seed" in sargv and "--threads" in sargv
    start = 4 + len(release.SENTIMENT_ARGS)
    assert sargv[start : start + len(quick)] == quick  # after the defaults: quick wins


def test_sentiment_step_without_its_data_names_what_is_missing(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match="sst2/train.tsv"):
        release.train_sentiment(tmp_path, "cpu", [], data=tmp_path / "nowhere")


def test_photo_release_without_flickr8k_says_what_is_missing_before_training(tmp_path, monkeypatch):
    from captioner.pipelines import photos

    with pytest.raises(SystemExit, match=r"Flickr8k not found .*--flickr8k DIR"):
        photos.find_flickr8k(tmp_path / "nowhere")
    # the release stops before it fetches or trains anything
    monkeypatch.setattr(release, "fetch", lambda: pytest.fail("fetched before the data check"))
    argv = ["--work", str(tmp_path / "work"), "--models", str(tmp_path / "models"),
            "--data", str(tmp_path)]  # fmt: skip
    with pytest.raises(SystemExit, match="Flickr8k not found"):
        release.main(argv)


def test_flickr8k_is_found_in_the_given_folder(tmp_path):
    from captioner.pipelines import photos

    (tmp_path / photos.TOKEN_FILE).write_text("x.jpg#0\ta dog\n")
    assert photos.find_flickr8k(tmp_path) == tmp_path.resolve()


def test_quick_release_refuses_to_overwrite_the_bundled_models(tmp_path):
    with pytest.raises(SystemExit):
        release.main(["--quick", "--work", str(tmp_path / "work"), "--only", "scenes"])


def test_translator_release_without_multi30k_says_what_is_missing_first(tmp_path, monkeypatch):
    from captioner.pipelines import translators

    monkeypatch.setattr(translators, "train", lambda *a, **k: pytest.fail("trained without data"))
    argv = ["--work", str(tmp_path / "work"), "--models", str(tmp_path / "models"),
            "--data", str(tmp_path), "--only", "translators"]  # fmt: skip
    with pytest.raises(SystemExit, match=r"Multi30k not found .*--multi30k DIR"):
        release.main(argv)


def test_fetch_runs_the_data_command_for_each_corpus(monkeypatch):
    import captioner.data.corpus_fetch as corpus_fetch

    seen = []
    monkeypatch.setattr(corpus_fetch, "fetch_corpus", lambda what, **kw: seen.append((what, kw)))
    release.fetch()
    assert seen == [("tuxpaint", {}), ("uci-sentiment", {}), ("glove", {})]
