"""Former home of the noise, blur and JPEG operators: now ``noise.py``, ``blur.py`` and ``jpeg.py``
(re-exported here for older imports)."""

from .blur import Blur, blur_kernel
from .jpeg import JPEG, quantization_table
from .noise import Denoising

__all__ = ["JPEG", "Blur", "Denoising", "blur_kernel", "quantization_table"]
