"""One cache root (CAPTIONER_CACHE > XDG_CACHE_HOME > ~/.cache) for every cached file, and
one progress bar."""

from __future__ import annotations

from pathlib import Path

from captioner.cache import cache_dir, cache_root
from captioner.progress import progress_bar


def test_cache_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CAPTIONER_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == tmp_path / "home" / ".cache" / "captioner"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "captioner"
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "mine"))
    assert cache_dir("onnx") == tmp_path / "mine" / "onnx"


def test_every_cache_user_follows_xdg(tmp_path, monkeypatch):
    from captioner.data import features, sentiment_corpora, tuxpaint
    from captioner.onnx_backend import default_cache_dir

    monkeypatch.delenv("CAPTIONER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = tmp_path / "captioner"
    assert default_cache_dir() == root / "onnx"
    found = [features.feature_cache_dir(), sentiment_corpora.uci_dir(), tuxpaint.default_dir()]
    assert all(Path(p).is_relative_to(root) for p in found), found


def test_progress_bar_disabled_still_iterates_and_counts(capsys):
    assert list(progress_bar(range(3), desc="x", enabled=False)) == [0, 1, 2]
    bar = progress_bar(total=5, desc="labeling", unit="img", enabled=True)
    bar.update(2)
    bar.close()
    assert "labeling" in capsys.readouterr().err
