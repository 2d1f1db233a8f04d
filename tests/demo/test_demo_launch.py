"""What `launch_app` prints: the local URL, and for a public link the CLI's `--share` flag,
not Gradio's "set `share=True` in `launch()`" (a user of `captioner demo` has no launch())."""

from __future__ import annotations

import socket

import pytest
from tests_support import tiny_captioner

pytest.importorskip("gradio")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("quiet", [False, True])
def test_launch_names_the_cli_share_flag(capsys, quiet):
    from captioner.demo.app import build_app, launch_app

    app = build_app({"tiny": tiny_captioner(encoder="mobilenet_v3_small")})
    try:
        _, url, share_url = launch_app(app, port=free_port(), prevent_thread_lock=True, quiet=quiet)
    finally:
        app.close()
    out = capsys.readouterr().out
    assert share_url is None and url.startswith("http://127.0.0.1:")
    assert "share=True" not in out and "launch()" not in out
    if quiet:
        assert "Running on" not in out and "--share" not in out
    else:
        assert f"Running on local URL:  {url}" in out
        assert "To create a public link, run `captioner demo --share`." in out
