"""Does a trained layered model of Table 1 read the clean low-pass image off its two inputs?

Eq. (3) noises every level with the same top-resolution noise (S(eps0, i), sinc) under its own schedule, so the
pair (z_base, z_top) holds a noise-free multiple of the low-resolution image (``schedule_shifting.
noise_free_part``) unless SNR_base = 4 SNR_top. Notebook 02 probes its shift sweep's models for it; this script
puts Table 1's pairs through the same probe (``schedule_shifting.noise_reliance``: the top level's x0 mean squared
error on training images noised as in training, conditional, EMA weights, then with the base level's noise drawn
from another eps0), beside the single-resolution model at the same schedule rule, which has no lower level to
read. Pass pairs of run folders of the run cache (``$LDLIB_CACHE/runs``), single first, each
``RULE=SINGLE_RUN,LAYERED_RUN``:

    python scripts/noise_leak_probe.py paper=cpu16-single32-926ee165308a,cpu16-layered32-869d336109c1
"""

import os
import sys
from pathlib import Path

from ldlib.data import data_spec
from ldlib.reproduction.schedule_shifting import PROBE_TS, noise_reliance, probe_batch
from ldlib.training.checkpoint import read_configs, resolve_checkpoint


def main(pairs: list[str], n: int = 64, seed: int = 0) -> None:
    runs = Path(os.environ.get("LDLIB_CACHE", ".cache/ldlib")) / "runs"
    print("| rule | t | single | layered | layered, base noise redrawn |\n|---|---|---|---|---|")
    for arg in pairs:
        rule, names = arg.split("=")
        single, layered = (resolve_checkpoint(runs / name) for name in names.split(","))
        configs = read_configs(layered)
        probe = probe_batch(data_spec("emoji3d", seed=seed), configs["model"].resolutions[-1],
                            configs["train"].text_encoder, n=n, seed=seed)
        alone = noise_reliance(single, *probe, seed=seed)
        both = noise_reliance(layered, *probe, seed=seed)
        for t, s, (trained, redrawn) in zip(PROBE_TS, alone[:, 0], both):
            print(f"| {rule} | {t} | {s:.4f} | {trained:.4f} | {redrawn:.4f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
