"""Tests for the training losses in ``edgedepth_train.losses`` (fast, CPU, small inputs)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from edgedepth_train.losses import (
    LOSSES,
    DynamicTaskWeighting,
    EdgeAwareGradientHuberLoss,
    LaplaceMixtureNLL,
    MultiScaleGradientLoss,
    PerceptualDepthLoss,
    SSIL1Loss,
    mixture_readout,
    normalize_ssi,
)
from edgedepth_train.losses.perceptual import _lpips_alex_available

PIXEL_LOSSES = [SSIL1Loss, MultiScaleGradientLoss, EdgeAwareGradientHuberLoss]


def smooth_map(n: int = 2, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """A positive, smooth random inverse-depth map (N,1,H,W)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, h // 4, w // 4, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) + 0.5


def random_mask(x: torch.Tensor, seed: int = 1, keep: float = 0.7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(x.shape, generator=g) < keep


def test_registry_lists_all_losses() -> None:
    assert set(LOSSES) == {"ssi_l1", "gradient", "laplace_nll", "perceptual", "edge_huber"}


def test_normalize_ssi_median_zero_mad_one_and_finite_outside_mask() -> None:
    x = smooth_map()
    m = random_mask(x)
    x_bad = torch.where(m, x, torch.full_like(x, float("inf")))
    y = normalize_ssi(x_bad, m)
    assert torch.isfinite(y).all()
    for i in range(x.shape[0]):
        v = y[i][m[i]]
        assert v.median().abs() < 1e-5
        assert torch.allclose(v.abs().mean(), torch.tensor(1.0), atol=1e-4)


def test_ssi_invariant_to_scale_and_shift() -> None:
    target = smooth_map(seed=0)
    pred = smooth_map(seed=3)
    m = random_mask(target)
    loss = SSIL1Loss()
    base = loss(pred, target, m)
    assert base > 0.1
    assert torch.allclose(loss(3.7 * pred + 2.5, target, m), base, atol=1e-5)
    assert torch.allclose(loss(pred, 0.2 * target + 9.0, m), base, atol=1e-5)
    assert loss(target, target, m).abs() < 1e-6
    assert loss(4.0 * target - 1.5, target, m).abs() < 1e-5


def test_ssi_images_with_too_few_valid_pixels_are_skipped() -> None:
    target = smooth_map()
    pred = smooth_map(seed=5)
    m = torch.ones_like(target, dtype=torch.bool)
    m[1] = False
    m[1, 0, 0, :3] = True
    loss = SSIL1Loss(min_valid=16)
    both = loss(pred, target, m)
    first = loss(pred[:1], target[:1], m[:1])
    assert torch.allclose(both, first)
    none = loss(pred, target, torch.zeros_like(m))
    assert none == 0
    p = pred.clone().requires_grad_(True)
    loss(p, target, torch.zeros_like(m)).backward()
    assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("cls", PIXEL_LOSSES)
def test_pixel_losses_zero_for_identical_and_affine(cls: type[torch.nn.Module]) -> None:
    target = smooth_map()
    m = random_mask(target)
    image = torch.randn(2, 3, 32, 32)
    loss = cls()
    kwargs = {"image": image} if cls is EdgeAwareGradientHuberLoss else {}
    assert loss(target, target, m, **kwargs).abs() < 1e-6
    assert loss(2.0 * target + 0.3, target, m, **kwargs).abs() < 1e-5
    assert loss(smooth_map(seed=7), target, m, **kwargs) > 1e-3


@pytest.mark.parametrize("cls", PIXEL_LOSSES)
def test_pixel_losses_gradients_flow(cls: type[torch.nn.Module]) -> None:
    target = smooth_map()
    m = random_mask(target)
    pred = smooth_map(seed=9).requires_grad_(True)
    kwargs = {"image": torch.randn(2, 3, 32, 32)} if cls is EdgeAwareGradientHuberLoss else {}
    cls()(pred, target, m, **kwargs).backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", PIXEL_LOSSES)
def test_pixel_losses_ignore_pixels_outside_mask(cls: type[torch.nn.Module]) -> None:
    target = smooth_map()
    m = random_mask(target)
    pred = smooth_map(seed=11)
    pred2 = torch.where(m, pred, torch.randn_like(pred) * 100)
    target2 = torch.where(m, target, torch.full_like(target, float("nan")))
    kwargs = {"image": torch.randn(2, 3, 32, 32)} if cls is EdgeAwareGradientHuberLoss else {}
    loss = cls()
    a = loss(pred, target, m, **kwargs)
    b = loss(pred2, target2, m, **kwargs)
    assert torch.isfinite(b)
    assert torch.allclose(a, b, atol=1e-6)


def test_gradient_loss_sees_structure_ssi_l1_misses_less() -> None:
    """A noisy prediction costs more gradient loss than a smooth offset-by-blur one."""
    target = smooth_map()
    loss = MultiScaleGradientLoss(scales=3)
    noisy = target + 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    assert loss(noisy, target) > loss(target, target) + 1e-3


def test_edge_weights_emphasise_errors_at_image_edges() -> None:
    target = smooth_map(n=1)
    pred = target.clone()
    pred[..., 10:12] += 0.5  # depth error across columns 9-12
    flat = torch.zeros(1, 3, 32, 32)
    edge_there = flat.clone()
    edge_there[..., 10:] = 1.0
    edge_elsewhere = flat.clone()
    edge_elsewhere[..., 25:] = 1.0
    loss = EdgeAwareGradientHuberLoss(alpha=4.0)
    assert loss(pred, target, image=edge_there) > loss(pred, target, image=edge_elsewhere)
    assert loss(pred, target, image=flat) == pytest.approx(loss(pred, target).item())


def laplace_params(mu: torch.Tensor, log_b: float, logit: float = 0.0) -> torch.Tensor:
    n, _, h, w = mu.shape
    return torch.cat(
        [torch.full((n, 1, h, w), logit), mu, mu, torch.full((n, 2, h, w), log_b)], dim=1
    ).contiguous()


def test_laplace_nll_minimal_at_target_with_small_scale() -> None:
    target = smooth_map()
    m = random_mask(target)
    y = normalize_ssi(target, m)
    nll = LaplaceMixtureNLL()
    at_target_sharp = nll(laplace_params(y, -3.0), target, m)
    at_target_broad = nll(laplace_params(y, 0.0), target, m)
    wrong_sharp = nll(laplace_params(y + 1.0, -3.0), target, m)
    wrong_broad = nll(laplace_params(y + 1.0, 0.0), target, m)
    assert at_target_sharp < at_target_broad < wrong_broad < wrong_sharp
    # Invariant to the target's affine scale: the target is SSI-normalised inside.
    assert torch.allclose(nll(laplace_params(y, -3.0), 5 * target + 1, m), at_target_sharp, atol=1e-4)
    # One matching component suffices when it carries the weight.
    mixed = laplace_params(y, -3.0, logit=6.0)
    mixed[:, 2:3] += 3.0
    assert nll(mixed, target, m) < at_target_sharp + 0.01


def test_laplace_nll_stable_and_gradients_flow() -> None:
    target = smooth_map()
    m = random_mask(target)
    params = torch.randn(2, 5, 32, 32) * 20  # extreme logits and log-scales
    params.requires_grad_(True)
    out = LaplaceMixtureNLL()(params, target, m)
    assert torch.isfinite(out)
    out.backward()
    assert torch.isfinite(params.grad).all()
    assert params.grad.abs().sum() > 0
    # Pixels outside the mask get no gradient and do not change the value.
    assert params.grad.masked_select(~m.expand(-1, 5, -1, -1)).abs().max() == 0
    params2 = torch.where(m, params.detach(), torch.randn_like(params) * 100)
    assert torch.allclose(LaplaceMixtureNLL()(params2, target, m), out.detach())


def test_mixture_readout_is_an_exact_step() -> None:
    h, w, edge = 8, 16, 7
    left, right = 0.2, 3.0
    params = torch.zeros(1, 5, h, w)
    params[:, 1] = left
    params[:, 2] = right
    cols = torch.arange(w, dtype=torch.float32)
    params[:, 0] = torch.where(cols < edge, 4.0 - 0.5 * cols, -0.3 * (cols - edge + 1)).expand(h, w)
    depth, conf = mixture_readout(params)
    expected = torch.where(cols < edge, torch.tensor(left), torch.tensor(right)).expand(1, 1, h, w)
    assert torch.equal(depth, expected)
    assert depth.unique().numel() == 2  # no intermediate values anywhere
    assert depth.shape == conf.shape == (1, 1, h, w)
    assert (conf >= 0.5).all() and (conf <= 1.0).all()
    pi1 = torch.sigmoid(params[:, 0:1])
    assert torch.allclose(conf, torch.maximum(pi1, 1 - pi1))


@pytest.fixture(scope="module")
def perceptual() -> PerceptualDepthLoss:
    return PerceptualDepthLoss()


def test_perceptual_backend_and_state_dict(perceptual: PerceptualDepthLoss) -> None:
    # Offline (no torchvision / cached AlexNet) "auto" must pick EfficientNet-Lite0.
    expected = "lpips-alex" if _lpips_alex_available() else "efficientnet-lite0"
    assert perceptual.backend_name == expected
    assert len(perceptual.state_dict()) == 0
    assert list(perceptual.parameters()) == []
    assert all(not p.requires_grad for p in perceptual.backbone.parameters())
    perceptual.train()
    assert perceptual.training and not perceptual.backbone.training
    perceptual.eval()
    # Device/dtype moves reach the unregistered backbone.
    perceptual.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in perceptual.backbone.parameters())
    perceptual.to(torch.float32)
    assert all(p.dtype == torch.float32 for p in perceptual.backbone.parameters())


def test_perceptual_loss_orders_differences(perceptual: PerceptualDepthLoss) -> None:
    target = smooth_map(n=2, h=64, w=64)
    m = random_mask(target, keep=0.9)
    same = perceptual(target, target, m)
    affine = perceptual(3 * target + 1, target, m)
    slightly = perceptual(target + 0.05 * smooth_map(n=2, h=64, w=64, seed=4), target, m)
    very = perceptual(smooth_map(n=2, h=64, w=64, seed=5), target, m)
    assert same.abs() < 1e-6 and affine.abs() < 1e-4
    assert 0 < slightly < very


def test_perceptual_gradients_mask_and_downsample(perceptual: PerceptualDepthLoss) -> None:
    target = smooth_map(n=2, h=64, w=64)
    m = random_mask(target, keep=0.9)
    pred = smooth_map(n=2, h=64, w=64, seed=6).requires_grad_(True)
    out = perceptual(pred, target, m)
    out.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    pred2 = torch.where(m, pred.detach(), torch.randn_like(pred) * 50)
    assert torch.allclose(perceptual(pred2, target, m), out.detach(), atol=1e-6)
    small = PerceptualDepthLoss(backbone="efficientnet-lite0", downsample=2, num_stages=2)
    assert small.backend_name == "efficientnet-lite0"
    assert torch.isfinite(small(pred.detach(), target, m))


@pytest.mark.skipif(importlib.util.find_spec("lpips") is not None, reason="lpips is installed here")
def test_perceptual_lpips_request_falls_back_cleanly() -> None:
    with pytest.warns(RuntimeWarning, match="efficientnet-lite0"):
        loss = PerceptualDepthLoss(backbone="lpips-alex", num_stages=1)
    assert loss.backend_name == "efficientnet-lite0"


def test_perceptual_invalid_backbone_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"auto.*efficientnet-lite0.*lpips-alex"):
        PerceptualDepthLoss(backbone="vgg")


def test_weighting_none_is_static_sum() -> None:
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0), "c": torch.tensor(5.0)}
    wt = DynamicTaskWeighting(["a", "b", "c"], {"a": 0.5, "b": 2.0}, mode="none")
    total, weights = wt(losses)
    assert total.item() == pytest.approx(0.5 * 2 + 2.0 * 3 + 1.0 * 5)
    assert weights == {"a": 0.5, "b": 2.0, "c": 1.0}
    assert list(wt.parameters()) == []
    with pytest.raises(KeyError):
        wt({"zzz": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="uncertainty"):
        DynamicTaskWeighting(["a"], mode="bogus")


def test_weighting_uncertainty_trains_log_vars() -> None:
    names = ["a", "b"]
    wt = DynamicTaskWeighting(names, {"a": 0.5}, mode="uncertainty")
    params = list(wt.parameters())
    assert len(params) == 1 and params[0].requires_grad
    x = torch.tensor(1.5, requires_grad=True)
    losses = {"a": 2.0 * x, "b": x**2}
    total, weights = wt(losses)
    # At init (log-variance 0) the total equals the static weighted sum.
    assert total.item() == pytest.approx(0.5 * 3.0 + 2.25)
    total.backward()
    assert wt.log_vars.grad is not None and (wt.log_vars.grad != 0).all()
    assert x.grad is not None
    # A few optimiser steps move the weights: the larger loss gets down-weighted.
    opt = torch.optim.SGD(wt.parameters(), lr=0.1)
    fixed = {"a": torch.tensor(0.1), "b": torch.tensor(10.0)}
    for _ in range(20):
        opt.zero_grad()
        wt(fixed)[0].backward()
        opt.step()
    _, weights = wt(fixed)
    assert weights["b"] < 1.0 < weights["a"] / 0.5
    assert "log_vars" in wt.state_dict()
