"""Signals: loading, sampling, losses, metrics and previews (images today)."""
from .image import PixelSampler, downscale_image, load_image, pixel_coords, render_image, save_image, to_uint8
from .metrics import mse, psnr, psnr_from_mse, ssim

__all__ = ["PixelSampler", "downscale_image", "load_image", "mse", "pixel_coords", "psnr", "psnr_from_mse",
           "render_image", "save_image", "ssim", "to_uint8"]
