"""Training the paper's models: the loop (``train``: AdamW, EMA, resume, torchrun), checkpoints and the
models that come out of them (``checkpoint``: ``load_model``, ``stack_from``), and training memory on the meta
device (``memory``). Imports the paper's modules, ``ldlib.data`` and ``ldlib.runtime``; nothing above.
"""

from .checkpoint import CheckpointError, latest_checkpoint, load_model, stack_from
from .train import SHARED_CPU, NonFiniteLoss, TrainResult, step_loss, train

__all__ = ["CheckpointError", "latest_checkpoint", "load_model", "stack_from", "SHARED_CPU", "NonFiniteLoss",
           "TrainResult", "step_loss", "train"]
