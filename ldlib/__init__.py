"""ldlib: a reproduction of "Layered Diffusion Model for One-Shot High Resolution Text-to-Image Synthesis"
(Khwaja et al., 2024, arXiv 2407.06079).

The data flow of eq. (3), one module per arrow:

    image x0 -> ldlib.pyramid (D(x0, i)) -> ldlib.crop (section 3.1)
    noise eps0 -> ldlib.noise (S(eps0, i), eq. 1)
    t -> ldlib.schedules (per-resolution shifted cosine log-SNR, section 2.3) -> (alpha_i, sigma_i)
    ldlib.forward: z_i = alpha_i D(x0, i) + sigma_i S(eps0, i)

Notebooks are run by ldlib.runner (``ldlib reproduce``) with parameters declared in ldlib.experiments.
"""

__version__ = "0.1.0"
