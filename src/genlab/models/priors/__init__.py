"""Priors over VQ-VAE code maps: the study's Gaussian mixture and small VAE, and a gated PixelCNN."""

PRIOR_KINDS = ("gmm", "vae", "pixelcnn")
