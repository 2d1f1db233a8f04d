"""The demo serves both bundled models; its scene tab captions with the scene-world one."""

from tests_support import tiny_captioner

from captioner.demo import app
from captioner.demo.handlers import SCENE_MODEL, Handlers


class Recorder:
    """Stands in for a Captioner: records which model captioned."""

    def __init__(self, name):
        self.name, self.decoder, self.calls = name, object(), 0

    def caption(self, images, **_):
        self.calls += 1
        return [f"caption by {self.name}" for _ in images]

    def generation_config(self, **chosen):  # the demo builds one config per request
        return chosen


def test_scene_tab_uses_the_scene_model_whatever_model_is_picked(tmp_path):
    photo, scenes = Recorder("default"), Recorder(SCENE_MODEL)
    h = Handlers({"default": photo, SCENE_MODEL: scenes}, work_dir=tmp_path)
    out = h.scene(3, "default", "greedy", 1, 1.0)
    assert out[3] == "caption by scenes" and scenes.calls == 1 and photo.calls == 0
    # without a scene model the picked model captions the scene
    h = Handlers({"default": photo}, work_dir=tmp_path)
    assert h.scene(3, "default", "greedy", 1, 1.0)[3] == "caption by default"


def test_bundled_models_lists_scenes_only_when_it_is_installed(tmp_path, monkeypatch):
    import captioner.api as api

    monkeypatch.setattr(api, "BUNDLED_DIR", tmp_path)
    assert app.bundled_models() == ["default"]
    (tmp_path / "scenes").mkdir()
    tiny_captioner().save_pretrained(tmp_path / "scenes")
    assert app.bundled_models() == ["default", "scenes"]
