"""The paper's reported numbers, for the labelled reference column of our tables (never used as results).

Khwaja et al., "Layered Diffusion Model for One-Shot High Resolution Text-to-Image Synthesis", 2024,
arXiv 2407.06079. The appendix tables (A.1, A.2) and figures are not in the text we have; only the numbers
below are printed in the main text.
"""

import math

#: Table 1: FLOPs per forward pass, FID and IS (mean, +/-) on MS-COCO validation.
TABLE1 = {
    "single128": {"resolution": 128, "flops": 1.24e12, "fid": 11.53, "is": (24.48, 0.41)},
    "single256": {"resolution": 256, "flops": 2.20e12, "fid": 14.61, "is": (28.61, 0.44)},
    "layered256": {"resolution": 256, "flops": 2.04e12, "fid": 13.38, "is": (29.62, 0.57)},
    "single512": {"resolution": 512, "flops": 3.24e12, "fid": 53.89, "is": (23.21, 0.29)},
    "layered512": {"resolution": 512, "flops": 2.79e12, "fid": 40.05, "is": (28.74, 0.47)},
}

#: Section 2.3: best log-SNR shifts found by the paper's sweeps (Fig. A.5), by layer resolution.
SHIFTS = {128: 0.0, 256: math.log(1 / 8), 512: math.log(1 / 32)}
