"""METEOR 1.5 through the Java jar that ships inside pycocoevalcap.

METEOR's synonym and paraphrase tables make a faithful re-implementation impractical, so,
like the COCO caption evaluation, we drive the reference jar over a pipe. pycocoevalcap is
a development dependency only: `meteor_unavailable_reason()` says why METEOR cannot run
(no pycocoevalcap, no jar, no `java`), and `captioner.metrics.score` then leaves it out.

The Java process is always closed: `MeteorScorer` is a context manager, `close()` is
idempotent, and a finalizer ends a forgotten process at garbage collection or exit.
"""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

JAR_NAME = "meteor-1.5.jar"


def find_meteor_jar() -> Path | None:
    """The METEOR jar inside an importable pycocoevalcap, or None."""
    try:
        import pycocoevalcap.meteor as package
    except ImportError:
        return None
    for folder in getattr(package, "__path__", []):
        jar = Path(folder) / JAR_NAME
        if jar.is_file():
            return jar
    return None


def meteor_unavailable_reason() -> str | None:
    """None when METEOR can run here, else a sentence saying what is missing."""
    try:
        import pycocoevalcap.meteor  # noqa: F401
    except ImportError as err:
        return f"pycocoevalcap is not importable ({err}); install it (pip install pycocoevalcap)"
    if find_meteor_jar() is None:
        return f"pycocoevalcap has no {JAR_NAME}"
    if shutil.which("java") is None:
        return "no `java` executable on PATH (METEOR 1.5 needs a Java runtime)"
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _end(process: subprocess.Popen) -> None:
    """End the Java process: EOF on stdin lets METEOR exit; kill it if it lingers."""
    try:
        process.stdin.close()
    except OSError:
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stop(process: subprocess.Popen, stderr_file) -> None:
    _end(process)
    stderr_file.close()  # stdout is closed by the reader thread at EOF


def _pump(stdout, lines: queue.Queue) -> None:
    """Reader thread: METEOR's output lines into a queue, then b"" at EOF."""
    try:
        for line in stdout:
            lines.put(line)
    finally:
        lines.put(b"")
        stdout.close()


class MeteorScorer:
    """A running METEOR 1.5 process (`java -jar meteor-1.5.jar - - -stdio -l en -norm`).

    Start-up loads the paraphrase table (seconds), so reuse one scorer across calls, e.g.
    `with MeteorScorer() as m: score(refs, hyps, meteor=m)`. Inputs should already be
    tokenised the COCO way (`captioner.metrics.ptb.tokenize_captions`).
    """

    def __init__(
        self, *, jar: str | Path | None = None, memory: str = "2G", timeout: float = 300.0
    ):
        reason = None if jar is not None else meteor_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"METEOR unavailable: {reason}")
        jar = Path(jar) if jar is not None else find_meteor_jar()
        if not jar.is_file():
            raise FileNotFoundError(f"METEOR jar not found: {jar}")
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile()
        logger.debug("starting METEOR: %s", jar)
        command = ["java", "-jar", f"-Xmx{memory}", jar.name, *"- - -stdio -l en -norm".split()]
        self._process = subprocess.Popen(
            command,
            cwd=jar.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        reader = threading.Thread(
            target=_pump,
            args=(self._process.stdout, self._lines),
            daemon=True,
            name="meteor-reader",
        )
        reader.start()
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _stop, self._process, self._stderr)

    def _error(self, what: str) -> RuntimeError:
        """Stop Java and build an error carrying what it still had to say."""
        if not self._finalizer.alive:
            return RuntimeError(f"METEOR {what}: this scorer was closed")
        _end(self._process)
        unread = []
        try:  # the process is gone, so the reader reaches EOF promptly
            while line := self._lines.get(timeout=2):
                unread.append(line)
            self._lines.put(line)
        except queue.Empty:
            pass
        self._stderr.seek(0)
        said = b"".join(unread)[-1000:] + self._stderr.read()[-2000:]
        said = " ".join(said.decode(errors="replace").split())
        self.close()
        return RuntimeError(f"METEOR {what}" + (f"; Java said: {said}" if said else ""))

    def _readline(self) -> str:
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            raise self._error(f"gave no answer within {self.timeout:.0f} s") from None
        if not line:
            self._lines.put(line)  # keep the EOF marker for later readers
            raise self._error("process ended unexpectedly")
        return line.decode().strip()

    def _number(self, text: str) -> float:
        if not _is_number(text):
            raise self._error(f"answered {text!r} where a number was expected")
        return float(text)

    def _send(self, lines: Sequence[str]) -> None:
        stdin = self._process.stdin

        def write() -> None:  # a thread, so a long batch cannot deadlock on full pipes
            try:
                for line in lines:
                    stdin.write(line.encode() + b"\n")
                stdin.flush()
            except (OSError, ValueError):  # closed or dead: the reader reports it
                pass

        threading.Thread(target=write, daemon=True, name="meteor-writer").start()

    def score(
        self, references: Sequence[Sequence[str]], hypotheses: Sequence[str]
    ) -> tuple[float, list[float]]:
        """Corpus METEOR and per-caption scores, exactly as pycocoevalcap's `Meteor` computes them."""
        if len(references) != len(hypotheses):
            raise ValueError(f"{len(references)} reference sets for {len(hypotheses)} hypotheses")
        if self._process.poll() is not None:
            raise self._error("process is not running")
        score_lines = []
        for refs, hyp in zip(references, hypotheses):
            hyp = hyp.replace("|||", "").replace("  ", " ")  # as pycocoevalcap does
            refs = [r.replace("|||", "") for r in refs]  # keeps the field separator intact
            score_lines.append(" ||| ".join(("SCORE", " ||| ".join(refs), hyp)))
        with self._lock:
            self._send(score_lines)
            stats = [self._readline() for _ in score_lines]
            for line in stats:  # a statistics line is a row of numbers
                if not line or not all(map(_is_number, line.split())):
                    raise self._error(f"answered {line!r} instead of statistics")
            self._send(["EVAL ||| " + " ||| ".join(stats)])
            per_caption = [self._number(self._readline()) for _ in stats]
            total = self._number(self._readline())
        return total, per_caption

    def close(self) -> None:
        """Stop the Java process (safe to call twice)."""
        self._finalizer()

    def __enter__(self) -> MeteorScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
