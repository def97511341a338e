"""Run by tests/test_distributed.py, alone or under torchrun: a few training steps of the smoke preset
(``train RUN_DIR STEPS EVERY [MICRO_BATCHES]``), or sampling from it (``sample RUN_DIR OUT``)."""

import sys
from pathlib import Path

import torch

from ldlib.cli import leave_process_group
from ldlib.config import DiffusionConfig, TrainConfig, model_config
from ldlib.data import shapes_dataset
from ldlib.data.text import HashTextEncoder, encode_unique
from ldlib.runtime import distributed
from ldlib.runtime.device import Execution
from ldlib.training import load_model, train

mode, run_dir = sys.argv[1], Path(sys.argv[2])
if mode == "train":
    steps, every = int(sys.argv[3]), int(sys.argv[4])
    micro = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    mcfg = model_config("smoke", 3)
    data = shapes_dataset(32, mcfg.resolutions[-1], seed=0)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    cfg = TrainConfig(steps=steps, batch_size=8, lr=1e-3, seed=3, text_encoder="hash", checkpoint_every=every,
                      warmup_steps=2, precision="fp32")
    result = train(mcfg, DiffusionConfig.paper(mcfg.resolutions), cfg, data, text, index, run_dir, device="cpu",
                   progress=False, execution=Execution(micro_batches=micro))
    print(f"done step {result.step} resumed_from {result.resumed_from}")
else:
    from ldlib.evaluation import generate

    ctx, _ = distributed.setup("cpu")
    model, configs = load_model(run_dir, device="cpu")
    prompts = [f"a small red circle {i}" for i in range(10)]
    images = generate(model, configs["diffusion"], HashTextEncoder(), prompts, steps=2, guidance=2.0, seed=5,
                      batch_size=3, progress=False)
    if ctx.is_main:
        torch.save(images, sys.argv[3])
leave_process_group()  # as ldlib.cli.main does after every command
