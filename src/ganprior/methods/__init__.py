"""Restoration methods sharing one loop and one result type (``base.py``); importing this package
registers CRI, DGP and the baselines (W, W+, PTI, PULSE)."""

from ganprior.methods.base import (
    Method,
    NonFiniteLossError,
    ReconstructionLoss,
    Result,
    StepCallback,
    StopRestoration,
    available_methods,
    get_method_class,
    register_method,
)
from ganprior.methods import cri, dgp, projection, pti, pulse  # noqa: F401  (registration)
from ganprior.methods.presets import PRESETS, cap_steps, preset_options

__all__ = [
    "Method",
    "NonFiniteLossError",
    "PRESETS",
    "ReconstructionLoss",
    "Result",
    "StepCallback",
    "StopRestoration",
    "available_methods",
    "cap_steps",
    "get_method_class",
    "preset_options",
    "register_method",
]
