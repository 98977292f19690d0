"""ganprior: restore degraded images by inverting a pretrained GAN (CRI, DGP and their baselines)."""

__version__ = "0.1.0"

__all__ = ["StopRestoration", "restore", "restore_batch", "restore_samples"]


def __getattr__(name: str):
    """``ganprior.restore`` without importing torch and the methods at ``import ganprior`` time."""
    if name in ("restore", "restore_batch"):
        from ganprior import api

        return getattr(api, name)
    if name == "StopRestoration":
        from ganprior.methods.base import StopRestoration

        return StopRestoration
    if name == "restore_samples":
        from ganprior.samples.restore import restore_samples

        return restore_samples
    raise AttributeError(f"module 'ganprior' has no attribute {name!r}")
