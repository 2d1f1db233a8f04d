"""The release recipe's bookkeeping: which training steps run, resume or are skipped."""

from captioner.pipelines import release


def test_interrupted_step_resumes_instead_of_shipping_its_best_epoch_so_far(tmp_path):
    step = tmp_path / "captioner"
    assert release._resume_flag(step) == []  # nothing yet: train from scratch
    step.mkdir()
    (step / "config.json").write_text("{}")
    (step / "model.safetensors").write_bytes(b"")
    assert release._resume_flag(step) is None  # a model without a run: use as is
    (step / "run" / "checkpoints").mkdir(parents=True)
    (step / "run" / "checkpoints" / "last.json").write_text('{"epoch": 3, "dir": "epoch-0003"}')
    # an interrupted run publishes its best epoch so far beside run/: it must resume
    assert release._resume_flag(step) == ["--resume"]


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
    assert "| scenes/test | 500 | beam 3 | 0.780 | - | - | 5.500 | 0.900 | - |" in text
    assert "| uci-sentiment/test | 300 | - | - | - | - | - | - | 0.810 |" in text
    assert "| gru/soft | 0.690 | 4.760 | 0.850 | 0.740 |" in text


def test_a_steps_thread_setting_does_not_leak_into_the_next(monkeypatch):
    import torch

    before = torch.get_num_threads()

    def recipe(argv):
        torch.set_num_threads(1)  # as train_sentiment's default --threads 1 does
        return 0

    try:
        torch.set_num_threads(2)
        release._run("step", recipe, [])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
