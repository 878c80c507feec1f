"""Image metrics: MSE (a differentiable tensor, usable as a loss), PSNR and SSIM (Python floats,
for logs and metrics.jsonl).

SSIM is Wang et al. (2004) as scikit-image computes it with
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=max_val)``: an 11 x 11 Gaussian window (sigma 1.5, truncated at 3.5 sigma),
K1 = 0.01, K2 = 0.03, statistics from a *valid* convolution (scikit-image filters the whole image
and then crops the 5-pixel border, which is the same thing), SSIM averaged per channel and then
over channels.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["mse", "psnr", "psnr_from_mse", "ssim"]

SSIM_WIN = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements, a 0-dim tensor (differentiable).

    >>> mse(torch.zeros(2, 2, 1), torch.full((2, 2, 1), 0.1))
    tensor(0.0100)
    """
    _check_pair(pred, target)
    return torch.mean((pred - target) ** 2)


def psnr_from_mse(mse_value: float | torch.Tensor, max_val: float = 1.0) -> float:
    """PSNR in dB from a mean squared error: 10 log10(max_val^2 / mse); inf when mse is 0.

    >>> psnr_from_mse(0.01)
    20.0
    """
    m = float(mse_value)
    if m <= 0.0:
        return math.inf
    return 10.0 * math.log10(max_val * max_val / m)


def psnr(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, a Python float (inf for identical images).

    Images are expected in [0, max_val]; nothing is clipped, so clip `pred` first if the
    comparison should match a saved 8-bit file. The MSE is taken over all pixels and channels.

    >>> round(psnr(torch.zeros(4, 4, 3), torch.full((4, 4, 3), 0.1)), 4)
    20.0
    """
    _check_pair(pred, target)
    return psnr_from_mse(torch.mean((pred.double() - target.double()) ** 2).item(), max_val)


def _gaussian_window(device) -> torch.Tensor:
    # scipy.ndimage.gaussian_filter's kernel: exp(-x^2 / 2 sigma^2) on x = -5..5, summed to 1.
    x = torch.arange(SSIM_WIN, dtype=torch.float64, device=device) - (SSIM_WIN - 1) / 2
    g = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0) -> float:
    """Mean structural similarity of two images [H, W, C] (or [H, W]), a Python float.

    Matches ``skimage.metrics.structural_similarity(target, pred, channel_axis=-1,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=max_val)``
    to about 1e-7. Computed in float64 with a separable window; both sides need >= 11 pixels.

    >>> img = torch.rand(32, 32, 3)
    >>> round(ssim(img, img), 6)
    1.0
    """
    _check_pair(pred, target)
    if pred.dim() == 2:
        pred, target = pred[..., None], target[..., None]
    if pred.dim() != 3:
        raise ValueError(f"ssim expects [H, W, C] or [H, W] images, got shape {tuple(pred.shape)}")
    h, w, c = pred.shape
    if h < SSIM_WIN or w < SSIM_WIN:
        raise ValueError(f"ssim needs images of at least {SSIM_WIN} x {SSIM_WIN} pixels, got {h} x {w}")
    x = pred.detach().permute(2, 0, 1).double()  # [C, H, W]
    y = target.detach().permute(2, 0, 1).double().to(x.device)
    # All five local statistics of all channels in one grouped, separable convolution.
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=0).unsqueeze(0)  # [1, 5C, H, W]
    g = _gaussian_window(x.device)
    n = stack.shape[1]
    stack = F.conv2d(stack, g.view(1, 1, SSIM_WIN, 1).expand(n, 1, SSIM_WIN, 1), groups=n)
    stack = F.conv2d(stack, g.view(1, 1, 1, SSIM_WIN).expand(n, 1, 1, SSIM_WIN), groups=n)
    mx, my, mxx, myy, mxy = stack[0].split(c, dim=0)
    vx, vy, vxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (SSIM_K1 * max_val) ** 2, (SSIM_K2 * max_val) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean(dim=(1, 2)).mean())
