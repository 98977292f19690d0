"""LPIPS through the ``lpips`` package, only with the real ImageNet backbone.

The ``lpips`` wheel ships the linear heads, but its AlexNet / VGG16 / SqueezeNet backbones come
from torchvision's download server, which no package registry mirrors. We therefore look for
the torchvision checkpoint in the hub cache (``$TORCH_HOME/hub/checkpoints``) and, when it is
absent, report LPIPS as unavailable instead of downloading or silently using a random backbone.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from .images import MetricInputError, MetricUnavailable, check_pair, from_uint8, to_uint8

#: lpips network name -> torchvision weights enum holding the checkpoint URL it loads
BACKBONE_WEIGHTS = {
    "alex": "AlexNet_Weights.IMAGENET1K_V1",
    "vgg": "VGG16_Weights.IMAGENET1K_V1",
    "squeeze": "SqueezeNet1_1_Weights.IMAGENET1K_V1",
}


def backbone_checkpoint(net: str) -> Path:
    """Where torchvision expects the ImageNet backbone of ``net`` (``alex``, ``vgg``, ``squeeze``)."""
    if net not in BACKBONE_WEIGHTS:
        raise MetricInputError(f"LPIPS network must be one of {sorted(BACKBONE_WEIGHTS)}, got {net!r}")
    from torchvision.models import get_weight

    url = get_weight(BACKBONE_WEIGHTS[net]).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def lpips_unavailable_reason(net: str = "alex") -> str | None:
    """``None`` when LPIPS-``net`` can run honestly here, else the reason it cannot."""
    try:
        import lpips  # noqa: F401 - presence check only
    except ImportError:
        return "the `lpips` package is not installed (pip install 'ganprior[metrics]')"
    checkpoint = backbone_checkpoint(net)
    if not checkpoint.is_file():
        return (f"backbone weights not present: {checkpoint.name} is not in {checkpoint.parent} "
                "(place the torchvision checkpoint there or point TORCH_HOME at a cache that has it)")
    return None


@lru_cache(maxsize=4)
def _model(net: str, checkpoint: Path) -> torch.nn.Module:
    import lpips

    return lpips.LPIPS(net=net, pretrained=True, pnet_rand=False, verbose=False).eval().requires_grad_(False)


def lpips_distance(x: torch.Tensor, ref: torch.Tensor, *, net: str = "alex") -> torch.Tensor:
    """LPIPS v0.1 per image ``[N]`` between ``[-1, 1]`` images quantised to uint8 (lower = closer).

    Raises :class:`MetricUnavailable` (with the reason) when the backbone weights are not present.
    """
    check_pair(x, ref)
    reason = lpips_unavailable_reason(net)
    if reason is not None:
        raise MetricUnavailable(f"LPIPS-{net}", reason)
    model = _model(net, backbone_checkpoint(net)).to(x.device)
    if x.shape[1] == 1:
        x, ref = x.expand(-1, 3, -1, -1), ref.expand(-1, 3, -1, -1)
    with torch.inference_mode():
        out = model(from_uint8(to_uint8(x)), from_uint8(to_uint8(ref)))
    return out.reshape(-1).double()
