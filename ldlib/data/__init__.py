"""The bottom layer with ``ldlib.runtime``: images and captions, nothing of the paper's method.

* ``images``: :class:`CaptionedImages` (uint8 images with captions), conversions to the [-1, 1] floats
  every model works in and to what matplotlib shows, PNG grids, example photographs;
* ``shapes``: a procedural captioned set with known attributes (exact text alignment);
* ``datasets``: ``load_dataset(name, split, resolution)`` for shapes, emoji3d, coco and your own folder, and
  the data specifications runs are keyed by (``data_spec``, ``from_spec``);
* ``text``: the frozen text encoder (all-MiniLM-L6-v2) and the per-caption cache of its token states.
"""

from .datasets import DATASETS, DatasetError, data_spec, from_spec, load_dataset
from .images import (EXAMPLE_IMAGES, CaptionedImages, center_square, example_images, load_rgb, save_image_grid,
                     to_display, to_float, to_uint8)
from .shapes import shapes_dataset
from .text import HashTextEncoder, TextBatch, TextEncoder, encode_unique, make_encoder

__all__ = ["DATASETS", "DatasetError", "data_spec", "from_spec", "load_dataset", "EXAMPLE_IMAGES", "CaptionedImages",
           "center_square", "example_images", "load_rgb", "save_image_grid", "to_display", "to_float", "to_uint8",
           "shapes_dataset", "HashTextEncoder", "TextBatch", "TextEncoder", "encode_unique", "make_encoder"]
