"""The defaults and name lists the command line and the library share, in one place.

Library functions take their keyword defaults from these tables and the CLI's options show the
same values (`%(default)s`), so `genlab sample RUN` and `genlab.sampling.sample_grid(RUN)` cannot
drift apart. Experiment settings (epochs, learning rates, ...) live in the config schema
(`genlab.config`), not here. This module imports nothing, so the CLI can build its parser cheaply.
"""

from __future__ import annotations

CHECKPOINTS = ("best", "last")  # which checkpoint of a run: best validation metric, or the last
PRIOR_KINDS = ("gmm", "vae", "pixelcnn")  # the priors over VQ-VAE code maps
TRAVERSE_MODES = ("all", "coords", "pca", "slerp", "recon")
FID_DIMS = (64, 192, 768, 2048)  # Inception feature blocks, as pytorch-fid names them
DISENTANGLE_PROTOCOLS = ("dlib", "cpu")  # `genlab disentangle --protocol` (genlab.eval.disentanglement.protocol)

SAMPLE = {"n": 100, "seed": 0, "which": "best"}
TRAVERSE = {"mode": "all", "rows": 8, "steps": 10, "span": 3.0, "n_recon": 500, "seed": 0, "which": "best"}
CODES = {"batch_size": 256, "which": "best"}
FID = {"dims": 2048, "batch_size": 50, "seed": 0}
PRIOR_EVAL = {"seed": 0, "which": "best"}
DISENTANGLE = {"protocol": "dlib", "seeds": 3, "which": "best"}
# where `genlab disentangle` writes, under RUN/eval/ (the report looks for them there)
DISENTANGLE_RESULT = "disentanglement.json"
DISENTANGLE_FIGURES = "disentanglement"
