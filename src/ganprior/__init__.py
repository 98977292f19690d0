"""ganprior: restore degraded images by inverting a pretrained GAN (CRI, DGP and their baselines)."""

__version__ = "0.1.0"
