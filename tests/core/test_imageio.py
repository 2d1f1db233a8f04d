import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from captioner.imageio import ImageLoadError, load_image, open_image


def save(img, path, **kw):
    img.save(path, **kw)
    return path


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = save(img, tmp_path / "rot.jpg", exif=exif)
    assert open_image(path).size == (20, 40)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_any_mode_becomes_rgb(tmp_path, mode):
    img = Image.new(mode, (8, 6))
    fmt = {"CMYK": "jpg", "F": "tiff", "I": "tiff"}.get(mode, "png")
    path = save(img, tmp_path / f"img.{fmt}")
    out = open_image(path)
    assert out.mode == "RGB" and out.size == (8, 6)


def test_sixteen_bit_png_keeps_its_brightness(tmp_path):
    a = np.full((4, 4), 65535 // 2, dtype=np.uint16)
    path = save(Image.fromarray(a), tmp_path / "deep.png")
    assert abs(int(np.asarray(open_image(path))[0, 0, 0]) - 127) <= 1


def test_palette_transparency_composites_over_white(tmp_path):
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0] * 256)
    img.info["transparency"] = 0
    path = save(img, tmp_path / "t.png", transparency=0)
    assert np.asarray(open_image(path))[0, 0].tolist() == [255, 255, 255]


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    r, g, b = np.asarray(open_image(path))[0, 0]
    assert r > 200 and b < 50


@pytest.mark.parametrize("size", [(2000, 1600), (5000, 3400)])  # 3.2 MP; 17 MP: reduced
def test_a_jpeg_opened_for_a_model_gives_the_pixels_of_its_decoded_image(tmp_path, size):
    """No draft(): its scaled DCT gave other pixels (and captions) than the same photo
    handed over as PIL or numpy; a large image is reduced alike whichever way it comes."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (size[1] // 50, size[0] // 50, 3), np.uint8))
    path = save(noise.resize(size, Image.Resampling.BILINEAR), tmp_path / "big.jpg")
    by_path = np.asarray(open_image(path, draft_size=224))
    decoded = Image.open(path)
    assert np.array_equal(by_path, np.asarray(load_image(decoded, draft_size=224)))
    assert np.array_equal(by_path, np.asarray(load_image(np.asarray(decoded), draft_size=224)))
    assert (min(by_path.shape[:2]) < min(size)) == (size[0] * size[1] > 16_000_000)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not a recognised image"),
    ],
)
def test_bad_bytes_give_clear_errors(tmp_path, content, match):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=match) as e:
        open_image(path)
    assert "photo.jpg" in str(e.value)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buf, "JPEG"
    )
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="corrupt or truncated"):
        open_image(path)


def test_decompression_bomb_is_refused_without_decoding(tmp_path):
    path = save(Image.new("L", (3000, 3000)), tmp_path / "bomb.png")
    with pytest.raises(ImageLoadError, match="decompression bomb") as e:
        open_image(path, max_pixels=1_000_000)
    assert "3000x3000 = 9 MP, above the 1 MP limit" in str(e.value)
    with pytest.raises(ImageLoadError, match="= 9 MP, above the 0.25 MP limit"):
        open_image(path, max_pixels=250_000)  # small limits are not printed as "0 MP"


def test_missing_broken_link_loop_and_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="cannot access"):
        open_image(tmp_path / "nope.png")
    os.symlink(tmp_path / "gone.png", tmp_path / "broken.png")
    with pytest.raises(ImageLoadError, match="broken symbolic link"):
        open_image(tmp_path / "broken.png")
    os.symlink(tmp_path / "b.png", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    with pytest.raises(ImageLoadError, match="a.png: symbolic link loop"):
        open_image(tmp_path / "a.png")
    with pytest.raises(ImageLoadError, match="directory"):
        open_image(tmp_path)


def test_arrays_tensors_and_pil_inputs():
    a = np.zeros((5, 7, 3), dtype=np.uint8)
    a[..., 1] = 255
    assert load_image(a).size == (7, 5)
    assert np.asarray(load_image(a.astype(np.float32) / 255.0))[0, 0].tolist() == [0, 255, 0]
    t = torch.zeros(3, 5, 7)
    t[2] = 1.0
    assert np.asarray(load_image(t))[0, 0].tolist() == [0, 0, 255]
    assert load_image(np.zeros((5, 7), dtype=np.uint8)).mode == "RGB"
    assert load_image(Image.new("RGBA", (3, 3))).mode == "RGB"
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(np.zeros((2, 3, 5)))
    with pytest.raises(ImageLoadError, match="cannot read an image from a dict"):
        load_image({})
