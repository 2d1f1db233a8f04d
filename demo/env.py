"""Offline, private settings for Gradio, applied by `prepare_environment()`: `captioner demo`
calls it first thing in `main()`, before `gradio` is imported (Gradio reads its temporary
directory at import and analytics when an app is built). Importing this module (or any of
the demo's) changes nothing; `temp_dir()` prepares the environment on first use."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

TEMP_PREFIX = "captioner-demo-"
OWNER_FILE = ".owner-pid"  # the pid of the demo process that made the temporary folder
UNMARKED_MAX_AGE_S = 24 * 3600  # folders of older versions (no owner file) kept a day

DEFAULT_HOST = "127.0.0.1"  # the demo listens on this machine only unless told


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temp_dirs(parent: str | os.PathLike | None = None) -> list[Path]:
    """Remove the temporary folders (uploaded photos: private data) of demo processes that
    died without cleaning up (SIGKILL, a crash, a power cut). Only this user's folders whose
    owner process is gone (or, without an owner file, older than a day) are removed."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(TEMP_PREFIX + "*"):
        try:
            st = folder.stat(follow_symlinks=False)
            if not folder.is_dir() or folder.is_symlink() or st.st_uid != os.getuid():
                continue
            marker = folder / OWNER_FILE
            if marker.is_file():
                text = marker.read_text(encoding="ascii").strip()
                stale = text.isdigit() and not _alive(int(text))
            else:
                stale = time.time() - st.st_mtime > UNMARKED_MAX_AGE_S
        except (OSError, UnicodeDecodeError):
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def stop_on_sigterm() -> None:
    """SIGTERM (`kill`, systemd, docker stop) stops the demo like Ctrl-C, so the exit
    handlers run and the temporary folder with the uploads is removed."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: the host application handles signals
        pass


def prepare_environment() -> Path:
    """Turn off analytics, the version check, telemetry and server-side rendering, keep
    localhost off any proxy, and give the demo its own temporary directory (removed at exit;
    those of dead demo processes are removed first) unless GRADIO_TEMP_DIR names one.
    Returns that directory. (The server's process also calls `stop_on_sigterm`.)"""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # also stops the PyPI version check
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_SSR_MODE", "False")  # no Node server
    for key in ("NO_PROXY", "no_proxy"):  # Gradio pings its own local URL at launch
        hosts = [h for h in os.environ.get(key, "").split(",") if h]
        os.environ[key] = ",".join(
            hosts + [h for h in ("127.0.0.1", "localhost") if h not in hosts]
        )
    if not os.environ.get("GRADIO_TEMP_DIR"):
        remove_stale_temp_dirs()
        temp = tempfile.mkdtemp(prefix=TEMP_PREFIX)
        Path(temp, OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="ascii")
        atexit.register(shutil.rmtree, temp, ignore_errors=True)
        os.environ["GRADIO_TEMP_DIR"] = temp
        if "gradio" in sys.modules:
            warnings.warn(
                "gradio was imported before captioner.demo: some of its files may go to its "
                "default temporary directory instead of " + temp,
                stacklevel=2,
            )
    return Path(os.environ["GRADIO_TEMP_DIR"])


def temp_dir() -> Path:
    """The demo's temporary folder (uploads, batch results); prepares the environment the
    first time."""
    return prepare_environment()
