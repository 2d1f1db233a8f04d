"""Fetching corpora through package registries: Debian packages (`apt-get download`,
unpacked with `dpkg-deb -x` or, where dpkg is absent, a pure-Python `.deb` reader) and npm
packages (`npm pack`, a gzipped tarball). Nothing here installs anything system-wide.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from captioner.errors import CaptionerError

logger = logging.getLogger("captioner.data")


class FetchError(CaptionerError, RuntimeError):
    """A registry fetch or unpack failed; the message says which command or file and why."""


def _run(cmd: list[str], *, cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise FetchError(f"`{cmd[0]}` is not on this machine; cannot run {' '.join(cmd)}")
    logger.info("running %s", " ".join(cmd))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def apt_download(package: str, dest: Path) -> Path:
    """`apt-get download PACKAGE` into `dest` (runs `apt-get update` once if apt has no list)."""
    dest.mkdir(parents=True, exist_ok=True)
    result = _run(["apt-get", "download", package], cwd=dest)
    if result.returncode != 0:
        logger.info(
            "apt-get download failed (%s); running apt-get update and retrying",
            result.stderr.strip().splitlines()[-1:] or "",
        )
        _run(["apt-get", "update"], cwd=dest)
        result = _run(["apt-get", "download", package], cwd=dest)
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        raise FetchError(f"apt-get download {package} failed: {result.stderr.strip()[-500:]}")
    return debs[-1]


def _ar_members(data: bytes, path: Path) -> dict[str, bytes]:
    """The members of a Unix `ar` archive (the container format of a .deb)."""
    if not data.startswith(b"!<arch>\n"):
        raise FetchError(f"{path}: not a .deb (no ar archive header)")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        if header[58:60] != b"`\n":
            raise FetchError(f"{path}: corrupt ar member header at byte {pos}")
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        members[name] = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def extract_tar(
    fileobj: io.BufferedIOBase | io.BytesIO,
    dest: Path,
    *,
    source: Path,
    members: list[str] | None = None,
) -> None:
    """Extract a (compressed) tarball safely (no absolute paths, links out, devices)."""
    try:
        with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
            chosen = [tar.getmember(m) for m in members] if members is not None else None
            tar.extractall(dest, members=chosen, filter="data")
    except KeyError as e:
        raise FetchError(f"{source}: missing member {e}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise FetchError(f"{source}: cannot unpack ({e})") from None


def extract_deb(deb: Path, dest: Path, *, use_dpkg: bool | None = None) -> None:
    """Unpack the data files of `deb` under `dest` (as `dpkg -x` does)."""
    deb = Path(deb)
    if not deb.is_file():
        raise FetchError(f"{deb}: file not found")
    dest.mkdir(parents=True, exist_ok=True)
    if use_dpkg is None:
        use_dpkg = shutil.which("dpkg-deb") is not None
    if use_dpkg:
        result = _run(["dpkg-deb", "-x", str(deb.resolve()), str(dest.resolve())], cwd=dest)
        if result.returncode != 0:
            raise FetchError(f"dpkg-deb -x {deb} failed: {result.stderr.strip()[-500:]}")
        return
    members = _ar_members(deb.read_bytes(), deb)
    data = next((v for k, v in members.items() if k.startswith("data.tar")), None)
    if data is None:
        raise FetchError(f"{deb}: no data.tar.* member (members: {sorted(members)})")
    extract_tar(io.BytesIO(data), dest, source=deb)


def npm_pack(spec: str, dest: Path) -> Path:
    """`npm pack NAME@VERSION` into `dest` (fetches the tarball through the npm registry)."""
    dest.mkdir(parents=True, exist_ok=True)
    result = _run(["npm", "pack", spec, "--silent"], cwd=dest)
    tgz = sorted(dest.glob("*.tgz"))
    if result.returncode != 0 or not tgz:
        raise FetchError(
            f"npm pack {spec} failed: {(result.stderr or result.stdout).strip()[-500:]}"
        )
    return tgz[-1]


def install_atomically(target: Path, fill) -> Path:
    """Run `fill(staging_dir)` and move the result to `target` only when it succeeded."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        staging = Path(tmp) / "out"
        staging.mkdir()
        fill(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target
