"""The defaults and name lists the command line and the library share, in one place.

Library functions take their keyword defaults from these tables and the CLI's options show the
same values (`%(default)s`), so `genlab sample RUN` and `genlab.sampling.sample_grid(RUN)` cannot
drift apart. Experiment settings (epochs, learning rates, ...) live in the config schema
(`genlab.config`); where a config field and a library argument mean the same thing (the FID
extractor's dims and batch size, the number of importance samples) both read the value from here.
This module imports nothing of genlab or torch, so the CLI can build its parser cheaply.
"""

from __future__ import annotations

from typing import Any  # the tables mix numbers and names

CHECKPOINTS = ("best", "last")  # which checkpoint of a run: best validation metric, or the last
CHECKPOINT_HELP = "which checkpoint: best (validation metric) or last"
PRIOR_KINDS = ("gmm", "vae", "pixelcnn")  # the priors over VQ-VAE code maps
TRAVERSE_MODES = ("all", "coords", "pca", "slerp", "recon")
FID_DIMS = (64, 192, 768, 2048)  # Inception feature blocks, as pytorch-fid names them
ESTIMATORS = ("is", "appendix-d", "ais")  # the marginal-likelihood estimators, in the order tables show them
IS_PROPOSALS = ("laplace", "encoder")  # importance sampling: mode-centred (Laplace) or the encoder (IWAE)
DISENTANGLE_PROTOCOLS = ("dlib", "cpu")  # `genlab disentangle --protocol` (genlab.eval.disentanglement.protocol)

SAMPLE: dict[str, Any] = {"n": 100, "seed": 0, "which": "best"}
TRAVERSE: dict[str, Any] = {"mode": "all", "rows": 8, "steps": 10, "span": 3.0, "n_recon": 500, "seed": 0, "which": "best"}
CODES: dict[str, Any] = {"batch_size": 256, "which": "best"}
# FID/KID everywhere (genlab fid, GAN training, the prior comparison, gan_quality): the Inception
# pool block (2048 = the standard FID), images per extractor batch, KID's random subsets
FID: dict[str, Any] = {"dims": 2048, "batch_size": 50, "seed": 0, "kid_subsets": 100}
PRIOR_EVAL: dict[str, Any] = {"seed": 0, "which": "best"}
QUALITY: dict[str, Any] = {"n": 1000}  # genlab evaluate --quality: real and generated images (the study's 1000 vs 1000)
# Importance samples per image: 1000 in the config (eval.samples), the library (importance_sampling,
# loglik_table, genlab.load(...).log_px) and the CLI alike. 1000 rather than 5000: with the mode-centred
# proposal K = 1000 already converges on the study's VAE (se <= 0.05 nat, gain <= 0.1 nat; benchmarks/RESULTS.md,
# "IS, mode-centred (default), K=1000") at a fifth of the cost. The study's own configs ask for 5000.
LOGLIK: dict[str, Any] = {"n_images": 10, "samples": 1000, "seed": 0, "which": "best"}
DISENTANGLE: dict[str, Any] = {"protocol": "dlib", "seeds": 3, "which": "best"}
# where `genlab disentangle` writes, under RUN/eval/ (the report looks for them there)
DISENTANGLE_RESULT = "disentanglement.json"
DISENTANGLE_FIGURES = "disentanglement"
