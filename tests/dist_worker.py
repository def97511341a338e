"""Run by tests/test_distributed.py, alone or under torchrun: a few steps of the smoke preset."""

import sys
from pathlib import Path

from ldlib.config import DiffusionConfig, TrainConfig, model_config
from ldlib.data import shapes_dataset
from ldlib.text import HashTextEncoder, encode_unique
from ldlib.train import train

run_dir, steps, every = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
mcfg = model_config("smoke", 3)
data = shapes_dataset(32, mcfg.resolutions[-1], seed=0)
text, index = encode_unique(HashTextEncoder(), data.captions)
cfg = TrainConfig(steps=steps, batch_size=8, lr=1e-3, seed=3, text_encoder="hash", checkpoint_every=every,
                  warmup_steps=2, precision="fp32")
result = train(mcfg, DiffusionConfig.paper(mcfg.resolutions), cfg, data, text, index, run_dir, device="cpu", progress=False)
print(f"done step {result.step} resumed_from {result.resumed_from}")
