"""Peak memory of the demo's batch tab on a zip of huge images (issue 14, item 11).

    python bench/demo_batch_memory.py          # 20 x 88 MP PNGs (the reported zip)
    python bench/demo_batch_memory.py 6 20     # 6 images of 20 MP: a quick run

Builds the zip in a temporary folder, then, in a fresh process, runs the batch tab's reading
and describing path (`iter_batch_items` + `describe_items`, with a stand-in model that only
records image sizes) and prints the process's resident memory before and at its peak. The
target is a peak under 2 GB; the tab used to hold 16 decoded images at once (7.3 GB here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

CHILD = """
import json, resource, sys
from pathlib import Path
from captioner.demo import batch
from captioner.encoders import ImageTransform

class Result:
    def __init__(self, size): self.size = size
    def to_record(self): return {"caption": "x", "tags": None, "sentiment": None}
    to_dict = to_record

class Model:
    name = "stand-in"
    sizes = []
    def describe(self, images, **kw):
        self.sizes += [im.size for im in images]
        return [Result(im.size) for im in images]

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

start = rss_mb()
model = Model()
work = Path(sys.argv[1])
transform = ImageTransform(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
items = batch.iter_batch_items([work / "huge.zip"], work_dir=work, transform=transform)
records = batch.describe_items(model, items, batch_size=16)
errors = sum(r["error"] is not None for r in records)
print(json.dumps({"start_mb": start, "peak_mb": rss_mb(), "images": len(records),
                  "errors": errors, "largest_kept": max(model.sizes) if model.sizes else None}))
"""


def build_zip(folder: Path, count: int, megapixels: float) -> Path:
    from PIL import Image

    width = int((megapixels * 1e6 * 3 / 2) ** 0.5)
    height = int(width * 2 / 3)
    png = folder / "one.png"
    Image.new("RGB", (width, height), (30, 120, 200)).save(png, compress_level=9)
    path = folder / "huge.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(count):
            zf.write(png, f"photos/img{i:02d}.png")
    png.unlink()
    return path


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 20
    megapixels = float(argv[1]) if len(argv) > 1 else 88.0
    with tempfile.TemporaryDirectory() as tmp:
        archive = build_zip(Path(tmp), count, megapixels)
        out = subprocess.run(
            [sys.executable, "-c", CHILD, tmp], capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result.update(zip_mb=round(archive.stat().st_size / 2**20, 1), megapixels=megapixels)
    print(json.dumps(result))
    peak_gb = result["peak_mb"] / 1024
    print(
        f"{count} x {megapixels:g} MP PNGs ({result['zip_mb']} MB zip): peak {peak_gb:.2f} GB "
        f"(start {result['start_mb'] / 1024:.2f} GB); target < 2 GB: ratio {peak_gb / 2:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
