"""K restorations of one photo that all reproduce the observation, and what their spread says.

``maps``: per-pixel uncertainty (spread of the samples) and hallucination (``x − A⁺A x``);
``calibration``: does the uncertainty predict the error (correlation, AUSE vs chance);
``render``: the maps as images and the samples sheet.
"""

from ganprior.samples.calibration import sparsification
from ganprior.samples.maps import determined_part, hallucination, pixel_rms, sample_spread

__all__ = ["determined_part", "hallucination", "pixel_rms", "sample_spread", "sparsification"]
