"""Caption sources: a fixture of every format, written here in the real files' layouts, loads
to one schema; every kind of bad record is one clear error naming file and line, or is
skipped and counted with on_error="skip"."""

import json

import pytest
from PIL import Image

from captioner.data import DataError, load_caption_dataset
from captioner.data.common import SPLITS, hash_split
from captioner.data.spec import parse_spec

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))


def make_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (8, 6), COLORS[i % len(COLORS)]).save(folder / name)
    return folder


def check_schema(dsd, *, n_images, n_captions):
    assert set(SPLITS) <= set(dsd)
    for ds in dsd.values():
        assert ds.column_names[:3] == ["image", "captions", "image_id"]
        assert type(ds.features["image"]).__name__ == "Image"
    assert sum(len(ds) for ds in dsd.values()) == n_images
    assert sum(len(c) for ds in dsd.values() for c in ds["captions"]) == n_captions
    row = next(ds for ds in dsd.values() if len(ds))[0]
    assert row["image"].size == (8, 6) and all(isinstance(c, str) and c for c in row["captions"])


# --- Flickr8k / Flickr30k -------------------------------------------------------------------
NAMES = ["1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg", "1002674143_1b742ab4b8.jpg"]


def make_flickr8k(root):
    make_images(root / "Flicker8k_Dataset", NAMES)
    lines = [
        f"{n}#{k}\tA dog number {i} runs , caption {k} ."
        for i, n in enumerate(NAMES)
        for k in range(5)
    ]
    lines.append("2258277193_586949ec62.jpg.1#0\tA name in no split list .")  # as in the real file
    (root / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, files in [("train", NAMES[:1]), ("dev", NAMES[1:2]), ("test", NAMES[2:])]:
        (root / f"Flickr_8k.{name}Images.txt").write_text("\n".join(files) + "\n")
    return root


def test_flickr8k(tmp_path):
    dsd = load_caption_dataset(f"flickr8k:{make_flickr8k(tmp_path)}")
    check_schema(dsd, n_images=3, n_captions=15)
    assert dsd["train"]["image_id"] == [NAMES[0]] and dsd["test"]["image_id"] == [NAMES[2]]
    assert dsd["validation"][0]["captions"][3] == "A dog number 1 runs , caption 3 ."
    assert any("in no split" in note for note in dsd.report.notes)


def test_flickr8k_nested_as_unzipped_into_folders(tmp_path):
    make_flickr8k(tmp_path / "Flickr8k_text")  # Flickr8k_text.zip unzipped into its own folder
    (tmp_path / "Flickr8k_Dataset").mkdir()
    (tmp_path / "Flickr8k_text" / "Flicker8k_Dataset").rename(
        tmp_path / "Flickr8k_Dataset" / "Flicker8k_Dataset"
    )
    dsd = load_caption_dataset(f"flickr8k:{tmp_path}")
    check_schema(dsd, n_images=3, n_captions=15)


def test_flickr30k_with_karpathy_splits(tmp_path):
    names = ["1000092795.jpg", "10002456.jpg", "1000268201.jpg", "1000344755.jpg"]
    make_images(tmp_path / "flickr30k-images", names)
    lines = [
        f"{n}#{k}\tTwo young guys {i} look at caption {k} ."
        for i, n in enumerate(names)
        for k in range(5)
    ]
    (tmp_path / "results_20130124.token").write_text("\n".join(lines) + "\n")
    splits = ["train", "val", "test", "train"]
    karpathy = {
        "images": [
            {"filename": n, "imgid": i, "split": s, "sentences": [{"raw": "x", "tokens": ["x"]}]}
            for i, (n, s) in enumerate(zip(names, splits))
        ],
        "dataset": "flickr30k",
    }
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(karpathy))
    dsd = load_caption_dataset(f"flickr30k:{tmp_path}")
    check_schema(dsd, n_images=4, n_captions=20)
    assert sorted(dsd["train"]["image_id"]) == sorted([names[0], names[3]])
    assert dsd["validation"]["image_id"] == [names[1]]


def test_flickr30k_without_splits_is_a_clear_error(tmp_path):
    (tmp_path / "results_20130124.token").write_text("a.jpg#0\tA cat .\n")
    with pytest.raises(DataError, match="dataset_flickr30k.json"):
        load_caption_dataset(f"flickr30k:{tmp_path}")


# --- COCO and Karpathy ----------------------------------------------------------------------
def make_coco(root, n=6):
    files = [f"COCO_val2014_{i:012d}.jpg" for i in range(1, n + 1)]
    make_images(root / "val2014", files)
    ann = {
        "info": {},
        "licenses": [],
        "type": "captions",
        "images": [
            {"id": i, "file_name": f, "width": 8, "height": 6} for i, f in enumerate(files, 1)
        ],
        "annotations": [
            {"id": 100 * i + k, "image_id": i, "caption": f"A photo {i} of thing {k}."}
            for i in range(1, n + 1)
            for k in range(2)
        ],
    }
    (root / "captions_val2014.json").write_text(json.dumps(ann))
    return root / "captions_val2014.json", root / "val2014", ann


def test_coco_hash_split_and_fixed_split(tmp_path):
    ann_path, img_dir, _ = make_coco(tmp_path)
    dsd = load_caption_dataset(f"coco:{ann_path}:{img_dir}")
    check_schema(dsd, n_images=6, n_captions=12)
    for split, ds in dsd.items():
        assert all(hash_split(i) == split for i in ds["image_id"])
    dsd = load_caption_dataset(f"coco:{ann_path}:{img_dir}?split=validation")
    assert len(dsd["validation"]) == 6 and len(dsd["train"]) == 0
    assert dsd["validation"][0]["captions"] == ["A photo 1 of thing 0.", "A photo 1 of thing 1."]


def test_malformed_json_names_file_and_line(tmp_path):
    ann_path, img_dir, _ = make_coco(tmp_path)
    ann_path.write_text('{"images": [],\n "annotations": [\n}')
    with pytest.raises(DataError, match=r"captions_val2014\.json:3: malformed line: invalid JSON"):
        load_caption_dataset(f"coco:{ann_path}:{img_dir}")
    ann_path.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="not a COCO captions file"):
        load_caption_dataset(f"coco:{ann_path}:{img_dir}")


def make_karpathy(root):
    make_images(root / "train2014", ["COCO_train2014_000000000009.jpg"])
    make_images(root / "val2014", [f"COCO_val2014_00000000004{i}.jpg" for i in range(3)])
    images = [
        {
            "filepath": "train2014",
            "filename": "COCO_train2014_000000000009.jpg",
            "split": "train",
            "imgid": 0,
            "cocoid": 9,
            "sentids": [0, 1],
            "sentences": [
                {"raw": "A plate of food.", "tokens": ["a"]},
                {"raw": "Food on a plate.", "tokens": []},
            ],
        }
    ]
    for i, split in enumerate(["restval", "val", "test"]):
        images.append(
            {
                "filepath": "val2014",
                "filename": f"COCO_val2014_00000000004{i}.jpg",
                "split": split,
                "imgid": i + 1,
                "cocoid": 40 + i,
                "sentences": [{"raw": f"A cat {i}."}],
            }
        )
    path = root / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path


def test_karpathy(tmp_path):
    dsd = load_caption_dataset(f"karpathy:{make_karpathy(tmp_path)}:{tmp_path}")
    check_schema(dsd, n_images=4, n_captions=5)
    assert sorted(dsd["train"]["image_id"]) == ["40", "9"]  # restval joins train
    assert dsd["validation"]["image_id"] == ["41"] and dsd["test"]["image_id"] == ["42"]


# --- CSV / JSONL / imagefolder --------------------------------------------------------------
def test_csv_rows_grouped_by_image(tmp_path):
    make_images(tmp_path / "Images", NAMES)
    rows = ["image,caption"] + [
        f'{n},"A child, number {i}, plays ({k})."' for i, n in enumerate(NAMES) for k in range(3)
    ]
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    dsd = load_caption_dataset(f"csv:{tmp_path / 'captions.csv'}?image_root={tmp_path / 'Images'}")
    check_schema(dsd, n_images=3, n_captions=9)
    row = next(ds for ds in dsd.values() if len(ds))[0]
    assert row["captions"][1].endswith("plays (1).") and "," in row["captions"][0]


def test_jsonl_file_name_captions_list_split_column_and_mapping(tmp_path):
    make_images(tmp_path / "img", ["a.png", "b.png", "c.png"])
    rows = [
        {"file_name": "img/a.png", "captions": ["One.", "Two."], "split": "train"},
        {"file_name": "img/b.png", "captions": ["Three."], "split": "val"},
        {"file_name": "img/c.png", "captions": ["Four."], "split": "test"},
    ]
    (tmp_path / "caps.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    dsd = load_caption_dataset(f"jsonl:{tmp_path / 'caps.jsonl'}")
    check_schema(dsd, n_images=3, n_captions=4)
    assert dsd["train"]["captions"] == [["One.", "Two."]] and dsd["validation"]["image_id"] == [
        "img/b.png"
    ]
    mapped = {"path": "img/a.png", "sentence": "Five."}
    (tmp_path / "m.jsonl").write_text(json.dumps(mapped) + "\n")
    dsd = load_caption_dataset(
        f"jsonl:{tmp_path / 'm.jsonl'}", columns="image:path,captions:sentence"
    )
    assert sum(len(d) for d in dsd.values()) == 1


@pytest.mark.parametrize("layout", ["split folders", "flat"])
def test_imagefolder_matches_datasets_imagefolder(tmp_path, layout):
    import datasets

    texts = ["A red square.", "A green square.", "A blue square."]
    if layout == "split folders":  # DIR/train/metadata.jsonl, DIR/test/metadata.jsonl
        for split, names in [("train", ["0001.png", "0002.png"]), ("test", ["0003.png"])]:
            make_images(tmp_path / split, names)
            rows = [{"file_name": n, "text": texts[int(n[:4]) - 1]} for n in names]
            (tmp_path / split / "metadata.jsonl").write_text(
                "\n".join(map(json.dumps, rows)) + "\n"
            )
    else:  # DIR/metadata.jsonl naming files in a subfolder
        make_images(tmp_path / "pics", ["0001.png", "0002.png", "0003.png"])
        rows = [{"file_name": f"pics/000{i + 1}.png", "text": t} for i, t in enumerate(texts)]
        (tmp_path / "metadata.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    ours = load_caption_dataset(f"imagefolder:{tmp_path}")
    check_schema(ours, n_images=3, n_captions=3)
    theirs = datasets.load_dataset(
        "imagefolder", data_dir=str(tmp_path), cache_dir=str(tmp_path / "hf")
    )
    if layout == "flat":  # imagefolder calls everything train; we hash-split it
        ours = {"train": datasets.concatenate_datasets([ours[s] for s in SPLITS])}
    assert set(theirs) == set(ours) & {"train", "test"} | set(theirs)
    for split in theirs:
        assert sorted(ours[split]["captions"]) == sorted([t] for t in theirs[split]["text"])
        pixels = sorted(r["image"].getpixel((0, 0)) for r in theirs[split])
        assert sorted(r["image"].getpixel((0, 0)) for r in ours[split]) == pixels


# --- Hugging Face datasets on local copies --------------------------------------------------
def make_hub_copy(root):
    import datasets

    feats = datasets.Features(
        {
            "img": datasets.Image(),
            "sentences": datasets.List(datasets.Value("string")),
            "img_id": datasets.Value("int64"),
        }
    )
    pics = [Image.new("RGB", (8, 6), c) for c in COLORS]
    train = datasets.Dataset.from_dict(
        {
            "img": pics[:5],
            "sentences": [[f"Pic {i}.", "Another."] for i in range(5)],
            "img_id": list(range(5)),
        },
        features=feats,
    )
    test = datasets.Dataset.from_dict(
        {"img": pics[5:], "sentences": [["Last pic."]], "img_id": [5]}, features=feats
    )
    dsd = datasets.DatasetDict(train=train, test=test)
    dsd.save_to_disk(str(root / "saved"))
    (root / "parquet").mkdir()
    train.to_parquet(str(root / "parquet" / "train.parquet"))
    test.to_parquet(str(root / "parquet" / "test.parquet"))
    return root


def test_hf_path_with_column_mapping(tmp_path):
    make_hub_copy(tmp_path)
    spec = f"hf:{tmp_path / 'saved'}?columns=image:img,captions:sentences,image_id:img_id"
    dsd = load_caption_dataset(spec)
    check_schema(dsd, n_images=6, n_captions=11)
    assert dsd["test"]["image_id"] == ["5"] and len(dsd["validation"]) >= 0
    assert sorted([*dsd["train"]["image_id"], *dsd["validation"]["image_id"]]) == [
        "0",
        "1",
        "2",
        "3",
        "4",
    ]
    files = load_caption_dataset(
        f"hf:{tmp_path / 'parquet'}",
        cache_dir=str(tmp_path / "hf"),
        columns={"image": "img", "captions": "sentences"},
    )
    check_schema(files, n_images=6, n_captions=11)
    with pytest.raises(DataError, match="column 'comments' .for 'captions'. not found"):
        load_caption_dataset(f"hf:{tmp_path / 'saved'}", columns="image:img,captions:comments")


def test_hf_path_column_and_bad_rows(tmp_path):
    make_images(tmp_path / "img", ["a.png", "b.png"])
    rows = [
        {"file_name": str(tmp_path / "img" / "a.png"), "caption": "A red one.", "split": "train"},
        {"file_name": str(tmp_path / "img" / "gone.png"), "caption": "Lost.", "split": "train"},
        {"file_name": str(tmp_path / "img" / "b.png"), "caption": "", "split": "test"},
    ]
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "data.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    spec = f"hf:{tmp_path / 'hub'}"
    with pytest.raises(DataError, match=r"\[train\] row 2: empty caption"):
        load_caption_dataset(spec, cache_dir=str(tmp_path / "hf"))
    dsd = load_caption_dataset(spec, cache_dir=str(tmp_path / "hf"), on_error="skip")
    assert dsd.report.counts() == {"empty caption": 1, "missing image": 1}
    assert "gone.png" in str(dsd.report.skipped[1])
    assert [c for ds in dsd.values() for c in ds["captions"]] == [["A red one."]]


# --- Bad data: one clear error naming file and line, or skipped and counted ------------------
def _flickr_bad(root, kind):
    make_flickr8k(root)
    token = (root / "Flickr8k.token.txt").read_text().splitlines()
    if kind == "missing image":
        (root / "Flicker8k_Dataset" / NAMES[1]).unlink()
        where = "Flickr8k.token.txt:6"
    elif kind == "unreadable image":
        (root / "Flicker8k_Dataset" / NAMES[1]).write_bytes(b"not a jpeg")
        where = "Flickr8k.token.txt:6"
    elif kind == "empty caption":
        token[6] = f"{NAMES[1]}#1\t   "
        where = "Flickr8k.token.txt:7"
    else:
        token[6] = f"{NAMES[1]} this line has no tab"
        where = "Flickr8k.token.txt:7"
    (root / "Flickr8k.token.txt").write_text("\n".join(token) + "\n")
    return f"flickr8k:{root}", where


def _csv_bad(root, kind):
    make_images(root, ["a.png", "b.png"])
    rows = ["image,caption", "a.png,A cat.", "b.png,A dog."]
    where = "caps.csv:3"
    if kind == "missing image":
        rows[2] = "gone.png,A dog."
    elif kind == "unreadable image":
        (root / "b.png").write_bytes(b"")
    elif kind == "empty caption":
        rows[2] = "b.png,"
    else:
        rows[2] = "b.png"  # no caption field
    (root / "caps.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{root / 'caps.csv'}", where


def _jsonl_bad(root, kind):
    make_images(root, ["a.png", "b.png"])
    rows = [
        json.dumps({"image": "a.png", "caption": "A cat."}),
        json.dumps({"image": "b.png", "caption": "A dog."}),
    ]
    if kind == "missing image":
        rows[1] = json.dumps({"image": "gone.png", "caption": "A dog."})
    elif kind == "unreadable image":
        (root / "b.png").write_text("<html>")
    elif kind == "empty caption":
        rows[1] = json.dumps({"image": "b.png", "caption": ""})
    else:
        rows[1] = '{"image": "b.png", "caption": '
    (root / "caps.jsonl").write_text("\n".join(rows) + "\n")
    return f"jsonl:{root / 'caps.jsonl'}", "caps.jsonl:2"


def _coco_bad(root, kind):
    ann_path, img_dir, ann = make_coco(root, n=3)
    if kind == "missing image":
        (img_dir / ann["images"][1]["file_name"]).unlink()
        where = "images[1]"
    elif kind == "unreadable image":
        (img_dir / ann["images"][1]["file_name"]).write_bytes(b"\xff\xd8 truncated")
        where = "images[1]"
    elif kind == "empty caption":
        ann["annotations"][3]["caption"] = " "
        where = "annotations[3]"
    else:
        ann["annotations"][3]["image_id"] = 999
        where = "annotations[3]"
    ann_path.write_text(json.dumps(ann))
    return f"coco:{ann_path}:{img_dir}", f"captions_val2014.json:{where}"


def _karpathy_bad(root, kind):
    path = make_karpathy(root)
    data = json.loads(path.read_text())
    where = "images[2]"
    if kind == "missing image":
        (root / "val2014" / data["images"][2]["filename"]).unlink()
    elif kind == "unreadable image":
        (root / "val2014" / data["images"][2]["filename"]).write_bytes(b"GIF89a")
    elif kind == "empty caption":
        data["images"][2]["sentences"][0]["raw"] = ""
        where = "images[2].sentences[0]"
    else:
        data["images"][2]["split"] = "holdout"
    path.write_text(json.dumps(data))
    return f"karpathy:{path}:{root}", f"dataset_coco.json:{where}"


KINDS = ["missing image", "unreadable image", "empty caption", "malformed line"]


@pytest.mark.parametrize(
    "make",
    [_flickr_bad, _csv_bad, _jsonl_bad, _coco_bad, _karpathy_bad],
    ids=["flickr8k", "csv", "jsonl", "coco", "karpathy"],
)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_record_raises_naming_file_and_line_or_is_skipped(tmp_path, make, kind):
    spec, where = make(tmp_path, kind)
    with pytest.raises(DataError) as err:
        load_caption_dataset(spec)
    assert where in str(err.value) and kind in str(err.value)
    dsd = load_caption_dataset(spec, on_error="skip")
    assert dsd.report.num_skipped == 1 and dsd.report.counts() == {kind: 1}
    assert where in str(dsd.report.skipped[0])
    assert sum(len(ds) for ds in dsd.values()) >= 1


def test_skip_is_logged(tmp_path, caplog):
    spec, _ = _csv_bad(tmp_path, "missing image")
    with caplog.at_level("INFO", logger="captioner.data"):
        load_caption_dataset(spec, on_error="skip")
    assert "gone.png" in caplog.text and "skipped 1 bad record" in caplog.text


def test_bad_on_error_value(tmp_path):
    spec, _ = _csv_bad(tmp_path, "empty caption")
    with pytest.raises(ValueError, match="on_error"):
        load_caption_dataset(spec, on_error="ignore")


# --- Spec strings ---------------------------------------------------------------------------
def test_parse_spec_forms():
    assert parse_spec("scenes")[0].kind == "scenes" and parse_spec("scenes:200")[0].args == ("200",)
    (coco,) = parse_spec("coco:/d/captions_train2014.json:/d/train2014?split=train&seed=3")
    assert coco.args == ("/d/captions_train2014.json", "/d/train2014")
    assert coco.options == {"split": "train", "seed": 3}
    (hf,) = parse_spec(
        "hf:nlphuji/flickr30k?columns=image:image,captions:caption&fractions=0.8,0.1,0.1"
    )
    assert hf.options == {"columns": "image:image,captions:caption", "fractions": (0.8, 0.1, 0.1)}
    assert [p.kind for p in parse_spec("scenes+tuxpaint")] == ["scenes", "tuxpaint"]
    assert parse_spec("csv:/data/a+b.csv")[0].args == ("/data/a+b.csv",)


@pytest.mark.parametrize(
    "spec", ["", "flickr9k:/x", "coco:/only-one-arg", "csv", "hf", "csv:x?novalue"]
)
def test_bad_spec_lists_the_forms(spec):
    with pytest.raises(ValueError) as err:
        load_caption_dataset(spec)
    assert "flickr8k:DIR" in str(err.value) or "key=value" in str(err.value)


def test_unknown_option_is_an_error(tmp_path):
    spec, _ = _csv_bad(tmp_path, "empty caption")
    with pytest.raises(ValueError, match="does not take option"):
        load_caption_dataset(spec, colour="red")
