"""Loaders of every data set, on fixtures the tests write themselves, and their errors for bad input."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from ldlib.data import datasets
from ldlib.data.datasets import DatasetError, load_coco, load_dataset, load_emoji3d, load_folder


def png(path, colour=(200, 30, 30), size=(40, 30)):
    Image.new("RGB", size, colour).save(path)


def add(tf, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


@pytest.fixture
def emoji_home(tmp_path, monkeypatch):
    """Two tarballs laid out like the npm packages: RGBA WebP renders and emoji-datasource's emoji.json."""
    folder = tmp_path / "emoji3d"
    folder.mkdir()
    entries = [{"name": "WAVING HAND SIGN", "unified": "1F44B", "non_qualified": None,
                "skin_variations": {"1F3FB": {"unified": "1F44B-1F3FB"}, "1F3FF": {"unified": "1F44B-1F3FF"}}}]
    entries += [{"name": f"THING {i}", "unified": f"1F{600 + i:03X}"} for i in range(40)]
    with tarfile.open(folder / datasets.EMOJI_NAMES[1], "w:gz") as tf:
        add(tf, "package/emoji.json", json.dumps(entries).encode())
    with tarfile.open(folder / datasets.EMOJI_TARBALL[1], "w:gz") as tf:
        codes = ["1f44b", "1f44b-1f3fb", "1f44b-1f3ff", "ffff"] + [f"1f{600 + i:03x}" for i in range(40)]
        for code in codes:
            buf = io.BytesIO()
            Image.new("RGBA", (32, 32), (10, 200, 10, 128)).save(buf, format="WEBP")
            add(tf, f"package/assets/{code}.webp", buf.getvalue())
    monkeypatch.setenv("LDLIB_DATA", str(tmp_path))
    return tmp_path


def test_emoji3d_captions_split_and_alpha(emoji_home):
    train, val = load_emoji3d("train", 16), load_emoji3d("val", 16)
    assert len(train) + len(val) == 43  # 'ffff' has no name and is skipped
    assert train.images.shape[1:] == (3, 16, 16) and train.images.dtype == torch.uint8
    everything = load_emoji3d("all", 16)
    waving = [c for c in everything.captions if c.startswith("waving hand sign")]
    assert sorted(waving) == ["waving hand sign", "waving hand sign, dark skin tone", "waving hand sign, light skin tone"]
    # all skin-tone variants of one concept are on the same side of the split
    sides = {("val" if c in val.captions else "train") for c in waving}
    assert len(sides) == 1 and len(val) > 0
    # half-transparent green on white: composited, not black
    px = everything.images[0, :, 8, 8].tolist()
    assert px[0] > 100 and px[1] > 150
    assert (emoji_home / "emoji3d" / "decoded-16.safetensors").exists()  # cached after the first decode


def test_emoji3d_missing_and_corrupt(tmp_path, monkeypatch):
    monkeypatch.setenv("LDLIB_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match="ldlib fetch emoji3d"):
        load_emoji3d("train", 16)
    (tmp_path / "emoji3d").mkdir()
    (tmp_path / "emoji3d" / datasets.EMOJI_TARBALL[1]).write_bytes(b"not a tarball")
    (tmp_path / "emoji3d" / datasets.EMOJI_NAMES[1]).write_bytes(b"nor this")
    with pytest.raises(DatasetError, match="unreadable"):
        load_emoji3d("train", 16)


def test_code_normalisation():
    assert datasets._normalise_code("23-fe0f-20e3") == "0023-fe0f-20e3"
    assert datasets._normalise_code("1f3f4-e0067_e0062") == "1f3f4-e0067-e0062"


@pytest.fixture
def coco(tmp_path):
    """A tiny COCO-format captions file and image folder."""
    (tmp_path / "val2014").mkdir()
    for i, colour in ((1, (255, 0, 0)), (2, (0, 0, 255)), (3, (0, 255, 0))):
        png(tmp_path / "val2014" / f"COCO_val2014_{i:012d}.jpg", colour, size=(64, 48))
    data = {
        "images": [{"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg", "width": 64, "height": 48} for i in (1, 2, 3)],
        "annotations": [
            {"id": 11, "image_id": 1, "caption": "A red wall. "},
            {"id": 10, "image_id": 1, "caption": "Red paint."},
            {"id": 20, "image_id": 2, "caption": "Blue sky."},
        ],
    }
    (tmp_path / "captions_val2014.json").write_text(json.dumps(data))
    return tmp_path


def test_coco_protocol(coco):
    ds = load_coco(coco / "captions_val2014.json", coco / "val2014", resolution=32)
    assert ds.captions == ["Red paint.", "Blue sky."]  # first caption by annotation id; image 3 has none
    assert ds.images.shape == (2, 3, 32, 32)
    assert ds.images[0, 0].float().mean() > 250 and ds.images[1, 2].float().mean() > 250
    every = load_coco(coco / "captions_val2014.json", coco / "val2014", resolution=32, all_captions=True)
    assert len(every) == 3 and load_dataset("coco", resolution=16, annotations=coco / "captions_val2014.json",
                                           images=coco / "val2014", limit=1).images.shape[0] == 1


def test_coco_standard_layout_through_data_root(coco):
    (coco / "annotations").mkdir()
    (coco / "captions_val2014.json").rename(coco / "annotations" / "captions_val2014.json")
    ds = load_dataset("coco", "val", 16, root=coco)
    assert ds.captions == ["Red paint.", "Blue sky."]
    with pytest.raises(DatasetError, match="point data_root"):
        load_dataset("coco", "train", 16, root=coco)  # no captions_train2014.json in the fixture
    with pytest.raises(ValueError, match="train or val"):
        load_dataset("coco", "test", 16, root=coco)


def test_coco_bad_input(coco):
    ann = coco / "captions_val2014.json"
    with pytest.raises(DatasetError, match="not found"):
        load_coco(coco / "nope.json", coco / "val2014")
    (coco / "bad.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="'annotations'"):
        load_coco(coco / "bad.json", coco / "val2014")
    data = json.loads(ann.read_text())
    del data["annotations"][0]["caption"]
    (coco / "nokey.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="lacks the key 'caption'"):
        load_coco(coco / "nokey.json", coco / "val2014")
    (coco / "val2014" / "COCO_val2014_000000000002.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="unreadable"):
        load_coco(ann, coco / "val2014")
    (coco / "val2014" / "COCO_val2014_000000000002.jpg").unlink()
    with pytest.raises(DatasetError, match="missing"):
        load_coco(ann, coco / "val2014")


def test_folder_jsonl_csv_and_errors(tmp_path):
    png(tmp_path / "a.png")
    png(tmp_path / "b.png", (0, 0, 0))
    (tmp_path / "captions.jsonl").write_text('{"file": "a.png", "caption": "red"}\n{"file": "b.png", "caption": "black"}\n')
    ds = load_folder(tmp_path, resolution=8)
    assert ds.captions == ["red", "black"] and ds.images.shape == (2, 3, 8, 8)
    (tmp_path / "c.csv").write_text("file,caption\na.png,red square\n")
    assert load_folder(tmp_path, tmp_path / "c.csv", resolution=8).captions == ["red square"]
    (tmp_path / "d.csv").write_text("file,text\na.png,red\n")
    with pytest.raises(DatasetError, match="line 2: needs both 'file' and 'caption'"):
        load_folder(tmp_path, tmp_path / "d.csv")
    (tmp_path / "e.jsonl").write_text('{"file": "zzz.png", "caption": "x"}\n')
    with pytest.raises(DatasetError, match="missing"):
        load_folder(tmp_path, tmp_path / "e.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no captions"):
        load_folder(tmp_path / "empty")


def test_shapes_through_common_interface():
    train, val = load_dataset("shapes", "train", 32, n=8), load_dataset("shapes", "val", 32, n=8)
    assert len(train) == 8 and train.captions != val.captions
    assert np.all([isinstance(a["objects"], list) for a in train.attributes])
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("imagenet")
