"""ldlib: a reproduction of "Layered Diffusion Model for One-Shot High Resolution Text-to-Image Synthesis"
(Khwaja et al., 2024, arXiv 2407.06079).

The package is layered; each layer imports only from the layers below it (``tests/test_layout.py`` checks):

    ldlib.reproduction   notebooks' parameters, runner, results, report, figures, run cache, verdicts per notebook
    ldlib.evaluation     FID / KID / IS-style metrics, text alignment, the Evaluator
    ldlib.training       the training loop, checkpoints (load_model, stack_from), training memory
    ldlib.<the paper>    the method itself, one module per arrow of eq. (3), below
    ldlib.data, ldlib.runtime   images, data sets and the text encoder; device, processes, files

The paper, one module per arrow of eq. (3):

    image x0 -> ldlib.pyramid (D(x0, i)) -> ldlib.crop (consistent crops, section 3.1)
    noise eps0 -> ldlib.noise (S(eps0, i), eq. 1)
    t -> ldlib.schedules (per-resolution shifted cosine log-SNR, section 2.3) -> (alpha_i, sigma_i)
    ldlib.forward: z_i = alpha_i D(x0, i) + sigma_i S(eps0, i)
    ldlib.network (LayeredUNet, section 2.1) -> x_hat_i -> ldlib.loss (sum_i w_i ||x_hat_i - D(x0, i)||^2)
    ldlib.sampler (DDIM / DDPM with the same schedules and noise), ldlib.stacking (section 3.2),
    ldlib.flops (Table 1's FLOPs), ldlib.config (configs and presets)

``ldlib reproduce`` (``ldlib.cli``) runs the notebooks with parameters declared in ldlib.reproduction.parameters.
"""

__version__ = "0.1.0"
