import os

import pytest
import torch

from ldlib.runtime.allocator import keep_freed_memory

os.environ.setdefault("MPLBACKEND", "agg")
# records (ldlib.runtime.records) are written only where LDLIB_RECORDS is set: a campaign's setting must not make the
# tests write into its records; the tests that check records set their own folder
os.environ.pop("LDLIB_RECORDS", None)
# as `ldlib` does (cli.main): the tests run what users run, and the notebooks' kernels papermill starts inherit it
keep_freed_memory()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def smoke_run(tmp_path):
    """A 2-resolution ``smoke`` model trained two steps on 8 shapes with hash-encoded captions: ``(run, data,
    text, index)`` (the run, its images, the caption cache and each image's row in it)."""
    from ldlib.config import DiffusionConfig, TrainConfig, model_config
    from ldlib.data import shapes_dataset
    from ldlib.data.text import HashTextEncoder, encode_unique
    from ldlib.training.train import train

    mcfg = model_config("smoke", 2)
    data = shapes_dataset(8, mcfg.resolutions[-1])
    text, index = encode_unique(HashTextEncoder(), data.captions)
    run = train(mcfg, DiffusionConfig.paper(mcfg.resolutions), TrainConfig(steps=2, batch_size=4, text_encoder="hash"),
                data, text, index, tmp_path / "run", progress=False)
    return run, data, text, index
