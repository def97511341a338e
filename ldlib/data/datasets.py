"""Captioned image sets behind one interface: ``load_dataset(name, split, resolution) -> CaptionedImages``.

* ``shapes``: procedural, instant (``ldlib.data.shapes``).
* ``emoji3d``: 3,391 Fluent Emoji 3D renders (npm ``@lobehub/fluent-emoji-3d@1.1.0``, MIT) captioned by
  their Unicode names from ``emoji-datasource@16.0.0`` (MIT), alpha composited on a white background.
  ``ldlib fetch emoji3d`` downloads both tarballs with ``npm pack`` into the data folder and checks their
  SHA-256. Train/validation split by concept: every skin-tone variant of an emoji lands on the same side
  (10% of concepts, chosen by a hash of the base code point, go to validation).
* ``coco``: MS-COCO captions JSON plus an image folder (the paper's data): one caption per image (the
  first annotation by id), centre crop to a square, resize (anti-aliased bilinear).
* ``folder``: your own images with a captions file: JSONL lines ``{"file": ..., "caption": ...}`` or a CSV
  with ``file,caption`` columns.

Decoded sets are cached per resolution in the data folder (``$LDLIB_DATA`` or ``~/.cache/ldlib/data``).
A run names its training data by a small specification dict (:func:`data_spec`), which the run cache hashes
and :func:`from_spec` loads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .images import CaptionedImages, center_square, load_rgb, to_uint8
from .shapes import shapes_dataset

EMOJI_TARBALL = ("@lobehub/fluent-emoji-3d@1.1.0", "lobehub-fluent-emoji-3d-1.1.0.tgz",
                 "c1bb7eee7de090205a232518a9ab4adb3df458bfbe8a1f78232991194c8b2e58")
EMOJI_NAMES = ("emoji-datasource@16.0.0", "emoji-datasource-16.0.0.tgz",
               "2006725061dc0098daa832d65f854a7bec0740af2eb47cb5b23d89f7e2c849f9")
SKIN_TONES = {"1f3fb": "light", "1f3fc": "medium-light", "1f3fd": "medium", "1f3fe": "medium-dark", "1f3ff": "dark"}
DATASETS = ("shapes", "emoji3d", "coco", "folder")


class DatasetError(RuntimeError):
    """A data set that is missing, corrupt or malformed; the message says how to fix it."""


def data_home() -> Path:
    return Path(os.environ.get("LDLIB_DATA") or Path.home() / ".cache" / "ldlib" / "data")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------- emoji3d


def fetch_emoji3d(home: Path | None = None, log=print) -> Path:
    """Download the emoji tarballs with ``npm pack`` (the registry through its own client) and verify them."""
    folder = (home or data_home()) / "emoji3d"
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("npm") is None:
        raise DatasetError("npm is needed to fetch emoji3d (apt-get install npm, or conda install nodejs)")
    for spec, filename, digest in (EMOJI_TARBALL, EMOJI_NAMES):
        path = folder / filename
        if path.exists() and _sha256(path) == digest:
            continue
        log(f"npm pack {spec}")
        subprocess.run(["npm", "pack", spec, "--silent"], cwd=folder, check=True, stdout=subprocess.DEVNULL)
        got = _sha256(path)
        if got != digest:
            path.unlink()
            raise DatasetError(f"{filename} has SHA-256 {got}, expected {digest}; the download was removed")
    return folder


def _normalise_code(stem: str) -> str:
    """File stems like '23-fe0f-20e3' or '1f3f4-e0067_e0062' to emoji-datasource's 4-digit, dash form."""
    return "-".join(p.zfill(4) for p in stem.replace("_", "-").lower().split("-"))


def emoji_captions(names_tarball: Path) -> dict[str, tuple[str, str]]:
    """code point string -> (caption, concept) from emoji-datasource's emoji.json."""
    try:
        with tarfile.open(names_tarball) as tf:
            data = json.load(tf.extractfile("package/emoji.json"))
    except (OSError, KeyError, tarfile.TarError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{names_tarball} is unreadable ({exc}); run `ldlib fetch emoji3d`") from None
    out = {}
    for entry in data:
        try:
            name, unified = entry["name"].lower(), entry["unified"].lower()
        except KeyError as exc:
            raise DatasetError(f"{names_tarball}: an emoji entry lacks {exc}") from None
        for code in (unified, (entry.get("non_qualified") or "").lower()):
            if code:
                out[_normalise_code(code)] = (name, unified)
        for tones, variant in (entry.get("skin_variations") or {}).items():
            tone = " and ".join(SKIN_TONES.get(t, t) for t in tones.lower().split("-"))
            caption = f"{name}, {tone} skin tone"
            for code in (variant.get("unified"), variant.get("non_qualified")):
                if code:
                    out[_normalise_code(code.lower())] = (caption, unified)
    return out


def _is_validation(concept: str) -> bool:
    return int(hashlib.sha1(concept.encode()).hexdigest(), 16) % 10 == 0


def load_emoji3d(split: str = "train", resolution: int = 64, home: Path | None = None) -> CaptionedImages:
    if split not in ("train", "val", "all"):
        raise ValueError(f"split must be train, val or all, got {split!r}")
    folder = (home or data_home()) / "emoji3d"
    images_tgz, names_tgz = folder / EMOJI_TARBALL[1], folder / EMOJI_NAMES[1]
    cache = folder / f"decoded-{resolution}.safetensors"
    meta = folder / f"decoded-{resolution}.json"
    if not cache.exists() or not meta.exists():
        for path in (images_tgz, names_tgz):
            if not path.exists():
                raise DatasetError(f"{path} not found: run `ldlib fetch emoji3d` (or `make data`)")
        captions = emoji_captions(names_tgz)
        imgs, caps, attrs = [], [], []
        try:
            with tarfile.open(images_tgz) as tf:
                for member in sorted(tf.getmembers(), key=lambda m: m.name):
                    if not member.name.endswith(".webp"):
                        continue
                    code = _normalise_code(Path(member.name).stem)
                    if code not in captions:
                        continue  # 17 of 3,391 files have no name in either source
                    x = load_rgb(io.BytesIO(tf.extractfile(member).read()))
                    imgs.append(to_uint8(center_square(x, resolution)))
                    caption, concept = captions[code]
                    caps.append(caption)
                    attrs.append({"code": code, "concept": concept})
        except (tarfile.TarError, OSError) as exc:
            raise DatasetError(f"{images_tgz} is corrupt ({exc}); delete it and run `ldlib fetch emoji3d`") from None
        save_file({"images": torch.stack(imgs)}, str(cache))
        meta.write_text(json.dumps({"captions": caps, "attributes": attrs}))
    try:
        images = load_file(str(cache))["images"]
        info = json.loads(meta.read_text())
    except Exception as exc:
        raise DatasetError(f"decoded cache {cache} is corrupt ({exc}); delete it to rebuild") from None
    keep = [i for i, a in enumerate(info["attributes"]) if split == "all" or (split == "val") == _is_validation(a["concept"])]
    idx = torch.tensor(keep, dtype=torch.long)
    return CaptionedImages(images[idx], [info["captions"][i] for i in keep], [info["attributes"][i] for i in keep])


# ---------------------------------------------------------------------------------------------- coco


def _read_image(path: Path, resolution: int) -> torch.Tensor:
    from PIL import UnidentifiedImageError

    if not path.exists():
        raise DatasetError(f"image {path} is missing")
    try:
        x = load_rgb(path)
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"image {path} is unreadable ({exc})") from None
    return to_uint8(center_square(x, resolution))


def load_coco(annotations: Path | str, images: Path | str, resolution: int = 256, limit: int | None = None,
              all_captions: bool = False) -> CaptionedImages:
    """MS-COCO captions (``captions_val2014.json`` + ``val2014/``): the paper evaluates on the validation set."""
    annotations, images = Path(annotations), Path(images)
    try:
        data = json.loads(annotations.read_text())
    except FileNotFoundError:
        raise DatasetError(
            f"COCO annotations {annotations} not found; put MS-COCO 2014 there (annotations/captions_<split>2014.json "
            f"and <split>2014/ images) or point data_root at your copy"
        ) from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{annotations} is not valid JSON ({exc})") from None
    for key in ("images", "annotations"):
        if key not in data:
            raise DatasetError(f"{annotations} lacks the '{key}' key of a COCO captions file")
    try:
        files = {im["id"]: im["file_name"] for im in data["images"]}
        by_image: dict[int, list[tuple[int, str]]] = {}
        for ann in data["annotations"]:
            by_image.setdefault(ann["image_id"], []).append((ann.get("id", 0), ann["caption"].strip()))
    except KeyError as exc:
        raise DatasetError(f"{annotations}: an entry lacks the key {exc}") from None
    ids = sorted(i for i in files if i in by_image)[:limit]
    imgs, caps, attrs = [], [], []
    for i in ids:
        x = _read_image(images / files[i], resolution)
        chosen = sorted(by_image[i]) if all_captions else [sorted(by_image[i])[0]]
        for _, caption in chosen:
            imgs.append(x)
            caps.append(caption)
            attrs.append({"image_id": i, "file": files[i]})
    if not imgs:
        raise DatasetError(f"{annotations} has no captioned images")
    return CaptionedImages(torch.stack(imgs), caps, attrs)


# -------------------------------------------------------------------------------------------- folder


def load_folder(root: Path | str, captions: Path | str | None = None, resolution: int = 64) -> CaptionedImages:
    """Images under ``root`` listed in a captions file (``captions.jsonl`` or ``captions.csv`` by default)."""
    root = Path(root)
    if captions is None:
        found = [root / n for n in ("captions.jsonl", "captions.csv") if (root / n).exists()]
        if not found:
            raise DatasetError(f"no captions.jsonl or captions.csv in {root}")
        captions = found[0]
    captions = Path(captions)
    rows = []
    try:
        if captions.suffix == ".csv":
            with open(captions, newline="") as fh:
                for n, row in enumerate(csv.DictReader(fh), start=2):
                    rows.append((n, row))
        else:
            for n, line in enumerate(captions.read_text().splitlines(), start=1):
                if line.strip():
                    rows.append((n, json.loads(line)))
    except FileNotFoundError:
        raise DatasetError(f"captions file {captions} not found") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{captions}: line {exc.lineno} is not JSON") from None
    imgs, caps, attrs = [], [], []
    for n, row in rows:
        if not row.get("file") or not row.get("caption"):
            raise DatasetError(f"{captions} line {n}: needs both 'file' and 'caption', got keys {sorted(row)}")
        imgs.append(_read_image(root / row["file"], resolution))
        caps.append(row["caption"])
        attrs.append({"file": row["file"]})
    if not imgs:
        raise DatasetError(f"{captions} lists no images")
    return CaptionedImages(torch.stack(imgs), caps, attrs)


def load_dataset(name: str, split: str = "train", resolution: int = 64, **kwargs) -> CaptionedImages:
    """One entry point for every source (see the module docstring)."""
    if name == "shapes":
        n = kwargs.pop("n", 2048)
        seed = kwargs.pop("seed", 0) + (1_000_003 if split == "val" else 0)
        return shapes_dataset(n, resolution, seed=seed)
    if name == "emoji3d":
        return load_emoji3d(split, resolution, **kwargs)
    if name == "coco":
        root = kwargs.pop("root", None)
        if root is not None:  # the standard layout: annotations/captions_<split>2014.json, <split>2014/
            part = {"train": "train", "val": "val"}.get(split)
            if part is None:
                raise ValueError(f"coco split must be train or val, got {split!r}")
            kwargs.setdefault("annotations", Path(root) / "annotations" / f"captions_{part}2014.json")
            kwargs.setdefault("images", Path(root) / f"{part}2014")
        return load_coco(resolution=resolution, **kwargs)
    if name == "folder":
        return load_folder(resolution=resolution, **kwargs)
    raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


# ------------------------------------------------------------------------------------- specifications


def data_spec(dataset: str, seed: int = 0, data_size: int = 2048, root: str = "") -> dict:
    """The training data of a run as the run cache keys it: ``{"kind": "shapes", "n": ..., "seed": ...}`` or
    ``{"kind": <data set>, "split": "train"[, "root": ...]}``. ``root`` is the data set's folder for ``coco``
    (standard 2014 layout) and ``folder``."""
    if dataset == "shapes":
        return {"kind": "shapes", "n": data_size, "seed": seed}
    if dataset not in DATASETS:
        raise ValueError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}")
    spec = {"kind": dataset, "split": "train"}
    if dataset in ("coco", "folder"):
        if not root:
            raise ValueError(f"data set {dataset!r} needs its folder: set data_root")
        spec["root"] = root
    return spec


def from_spec(spec: dict, resolution: int) -> CaptionedImages:
    """The images a :func:`data_spec` names, at ``resolution``."""
    kind = spec.get("kind")
    if kind == "shapes":
        return shapes_dataset(int(spec["n"]), resolution, seed=int(spec.get("seed", 0)))
    if kind in DATASETS:
        rest = {k: v for k, v in spec.items() if k not in ("kind", "split")}
        return load_dataset(kind, spec.get("split", "train"), resolution, **rest)
    raise ValueError(f"unknown data specification {spec!r}; kinds: {', '.join(DATASETS)}")
