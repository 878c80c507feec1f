"""inr.signals.image and inr.signals.metrics: loading, coordinates, sampling, rendering, saving, metrics."""
from __future__ import annotations

import os
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inr.errors import InputError
from inr.signals.image import (PixelSampler, downscale_image, load_image, pixel_coords, render_image,
                               save_image, to_uint8)
from inr.signals.metrics import mse, psnr, psnr_from_mse, ssim

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# helpers


def _write_png16(path, a: np.ndarray) -> None:
    """Independent 16-bit PNG writer cycling through all five row filters (None, Sub, Up,
    Average, Paeth), so the loader is checked against every filter, not just our own encoder's."""
    a = a if a.ndim == 3 else a[:, :, None]
    h, w, c = a.shape
    bpp = 2 * c
    rows = np.frombuffer(a.astype(">u2").tobytes(), np.uint8).reshape(h, w * bpp).astype(np.int64)
    out = bytearray()
    for i in range(h):
        ftype = i % 5
        r, up = rows[i], rows[i - 1] if i else np.zeros_like(rows[0])
        left = np.concatenate([np.zeros(bpp, np.int64), r[:-bpp]])
        ul = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        if ftype == 0:
            f = r
        elif ftype == 1:
            f = r - left
        elif ftype == 2:
            f = r - up
        elif ftype == 3:
            f = r - (left + up) // 2
        else:
            p = left + up - ul
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
            f = r - pred
        out += bytes([ftype]) + (f % 256).astype(np.uint8).tobytes()

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    color = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))
    with open(path, "wb") as fh:
        fh.write(data)


def _assert_one_line_error(excinfo, path):
    msg = str(excinfo.value)
    assert str(path) in msg
    assert "\n" not in msg


def _noisy(img: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (img + sigma * torch.randn(img.shape, generator=g)).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# loading


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_load_png_8bit(tmp_path, channels):
    a = RNG.integers(0, 256, (7, 9, channels), dtype=np.uint8)
    path = tmp_path / "img.png"
    iio.imwrite(path, a[..., 0] if channels == 1 else a)
    img = load_image(path)
    assert img.dtype == torch.float32 and img.shape == (7, 9, channels)
    assert torch.equal(img, torch.from_numpy(a.astype(np.float32) / 255))


def test_load_png_gray_alpha_becomes_rgba(tmp_path):
    a = RNG.integers(0, 256, (5, 6, 2), dtype=np.uint8)
    path = tmp_path / "la.png"
    iio.imwrite(path, a)
    img = load_image(path)
    assert img.shape == (5, 6, 4)
    expect = a.astype(np.float32) / 255
    for k in range(3):
        assert torch.equal(img[..., k], torch.from_numpy(expect[..., 0]))
    assert torch.equal(img[..., 3], torch.from_numpy(expect[..., 1]))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_load_png_16bit_exact(tmp_path, channels):
    # Pillow alone reads 16-bit colour PNGs at 8 bits; the loader must keep all 16.
    a = RNG.integers(0, 65536, (11, 13, channels)).astype(np.uint16)
    path = tmp_path / "img16.png"
    _write_png16(path, a)
    img = load_image(path).double().numpy()
    expect = a.astype(np.float64) / 65535
    if channels == 2:
        expect = expect[..., [0, 0, 0, 1]]
    assert img.shape == expect.shape
    np.testing.assert_allclose(img, expect, rtol=0, atol=1e-7)


def test_load_png_16bit_gray_via_imageio(tmp_path):
    a = RNG.integers(0, 65536, (6, 5)).astype(np.uint16)
    path = tmp_path / "g16.png"
    iio.imwrite(path, a)
    np.testing.assert_allclose(load_image(path)[..., 0].double().numpy(), a / 65535, atol=1e-7)


def test_load_jpeg(tmp_path):
    a = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    path = tmp_path / "img.jpg"
    iio.imwrite(path, a, quality=95)
    decoded = iio.imread(path)
    img = load_image(path)
    assert img.shape == (16, 16, 3)
    assert torch.equal(img, torch.from_numpy(decoded.astype(np.float32) / 255))


@pytest.mark.parametrize("dtype,scale", [(np.uint8, 255), (np.uint16, 65535)])
def test_load_tiff_integer(tmp_path, dtype, scale):
    a = RNG.integers(0, scale + 1, (8, 10, 3)).astype(dtype)
    path = tmp_path / "img.tif"
    iio.imwrite(path, a)
    np.testing.assert_allclose(load_image(path).double().numpy(), a / scale, atol=1e-7)


def test_load_float_tiff_keeps_hdr_values(tmp_path):
    a = RNG.uniform(-0.5, 4.0, (6, 7, 3)).astype(np.float32)  # HDR: nothing may be clipped
    path = tmp_path / "hdr.tiff"
    iio.imwrite(path, a)
    assert torch.equal(load_image(path), torch.from_numpy(a))


def test_load_multipage_tiff_first_page(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    a = RNG.integers(0, 256, (3, 5, 6), dtype=np.uint8)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, a, photometric="minisblack")  # 3 gray pages
    assert len(tifffile.TiffFile(path).pages) == 3
    img = load_image(path)
    assert img.shape == (5, 6, 1)
    assert torch.equal(img[..., 0], torch.from_numpy(a[0] / np.float32(255)))
    # scikit-image's own 2-page sample, as a file written by other software
    import skimage

    sample = os.path.join(os.path.dirname(skimage.__file__), "data", "multipage.tif")
    if os.path.isfile(sample):
        assert load_image(sample).shape == (15, 10, 1)


def test_load_planar_tiff(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    a = RNG.integers(0, 256, (3, 5, 6), dtype=np.uint8)  # channels first on disk
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, a, photometric="rgb", planarconfig="separate")
    img = load_image(path)
    assert img.shape == (5, 6, 3)
    assert torch.equal(img, torch.from_numpy(np.moveaxis(a, 0, -1) / np.float32(255)))


def test_load_gif_first_frame(tmp_path):
    frames = RNG.integers(0, 256, (2, 6, 7, 3), dtype=np.uint8)
    frames[1] = 255 - frames[0]
    path = tmp_path / "anim.gif"
    iio.imwrite(path, frames)
    first = iio.imread(path, index=0)
    img = load_image(path)
    assert img.shape[:2] == (6, 7)
    assert torch.equal(img[..., :3], torch.from_numpy(first[..., :3] / np.float32(255)))


def test_load_exr_if_writable(tmp_path):
    a = RNG.uniform(-1.0, 8.0, (4, 5, 3)).astype(np.float32)
    path = tmp_path / "hdr.exr"
    try:
        iio.imwrite(path, a, plugin="EXR-FI")
    except Exception as e:  # FreeImage's binary is not installed here
        pytest.skip(f"imageio cannot write EXR here: {e}")
    with open(path, "rb") as fh:
        assert fh.read(4) == b"\x76\x2f\x31\x01"  # a real OpenEXR file
    np.testing.assert_allclose(load_image(path).numpy(), a, rtol=1e-3, atol=1e-3)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(InputError, match="no such file") as e:
        load_image(path)
    _assert_one_line_error(e, path)


def test_directory(tmp_path):
    with pytest.raises(InputError, match="directory") as e:
        load_image(tmp_path)
    _assert_one_line_error(e, tmp_path)


def test_zero_size_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty") as e:
        load_image(path)
    _assert_one_line_error(e, path)


@pytest.mark.parametrize("name,data", [
    ("garbage.png", b"this is not an image at all" * 10),
    ("truncated.png", None),
    ("fake.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 50),
    ("fake.tif", b"II*\x00" + b"\x01" * 60),
])
def test_corrupt_file(tmp_path, name, data):
    path = tmp_path / name
    if data is None:
        good = tmp_path / "good.png"
        iio.imwrite(good, RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        data = good.read_bytes()[:60]
    path.write_bytes(data)
    with pytest.raises(InputError, match="cannot read image") as e:
        load_image(path)
    _assert_one_line_error(e, path)


def test_non_finite_pixels(tmp_path):
    a = np.zeros((4, 4), np.float32)
    a[1, 2] = np.nan
    a[3, 0] = np.inf
    path = tmp_path / "nan.tif"
    iio.imwrite(path, a)
    with pytest.raises(InputError, match="2 pixel value") as e:
        load_image(path)
    _assert_one_line_error(e, path)


def test_unsupported_channels(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "five.tif"
    tifffile.imwrite(path, np.zeros((4, 4, 5), np.uint8), photometric="minisblack", planarconfig="contig")
    with pytest.raises(InputError, match="channels") as e:
        load_image(path)
    _assert_one_line_error(e, path)


# ---------------------------------------------------------------------------------------------
# coordinates and sampling


def test_pixel_coords_2x2():
    expected = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]])
    assert torch.equal(pixel_coords(2, 2), expected)


def test_pixel_coords_row_major_non_square():
    c = pixel_coords(2, 3)  # H = 2 rows, W = 3 columns
    x = torch.tensor([-2 / 3, 0.0, 2 / 3])
    expected = torch.tensor([[x[0], -0.5], [x[1], -0.5], [x[2], -0.5], [x[0], 0.5], [x[1], 0.5], [x[2], 0.5]])
    torch.testing.assert_close(c, expected, rtol=0, atol=1e-7)
    # formula check at a larger size
    h, w = 5, 7
    c = pixel_coords(h, w).view(h, w, 2)
    i, j = 3, 4
    torch.testing.assert_close(c[i, j], torch.tensor([(j + 0.5) / w * 2 - 1, (i + 0.5) / h * 2 - 1]))


def test_pixel_coords_crop():
    torch.testing.assert_close(pixel_coords(4, 6, crop=(-1, -1, 1, 1)), pixel_coords(4, 6))
    # The top-left quadrant at 2x2: centres at -0.75 and -0.25.
    expected = torch.tensor([[-0.75, -0.75], [-0.25, -0.75], [-0.75, -0.25], [-0.25, -0.25]])
    torch.testing.assert_close(pixel_coords(2, 2, crop=(-1, -1, 0, 0)), expected)
    # 2x super-resolution grid interleaves with... its 1x grid's cells: each 1x centre is the
    # mean of its 2x2 sub-pixel centres.
    c2 = pixel_coords(8, 12).view(4, 2, 6, 2, 2).mean(dim=(1, 3)).reshape(-1, 2)
    torch.testing.assert_close(c2, pixel_coords(4, 6))


def test_sampler_shapes_and_values():
    h, w = 6, 5
    img = torch.arange(h * w * 2, dtype=torch.float32).view(h, w, 2)
    s = PixelSampler(img, batch_size=17, generator=torch.Generator().manual_seed(0))
    xy, v = s()
    assert xy.shape == (17, 2) and v.shape == (17, 2)
    # every sampled value sits at its coordinate
    j = ((xy[:, 0] + 1) / 2 * w - 0.5).round().long()
    i = ((xy[:, 1] + 1) / 2 * h - 0.5).round().long()
    assert torch.equal(v, img[i, j])
    # iterable, and reproducible with a seeded generator
    it = iter(PixelSampler(img, 17, generator=torch.Generator().manual_seed(0)))
    xy2, v2 = next(it)
    assert torch.equal(xy, xy2) and torch.equal(v, v2)


def test_sampler_full_batch():
    img = torch.rand(4, 3, 3)
    s = PixelSampler(img, batch_size=12)
    assert s.full_batch
    for xy, v in (s(), s()):
        assert torch.equal(xy, pixel_coords(4, 3))
        assert torch.equal(v, img.reshape(-1, 3))
    assert PixelSampler(img, batch_size=10**6)()[0].shape == (12, 2)


# ---------------------------------------------------------------------------------------------
# rendering


def _analytic(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy[:, 0], xy[:, 1]
    return torch.stack([0.5 + 0.4 * x, 0.5 - 0.3 * y, 0.25 * (x + y) + 0.5], dim=-1)


def test_render_image_reproduces_pixels():
    h, w = 9, 13
    expected = _analytic(pixel_coords(h, w)).view(h, w, 3)
    for chunk in (1, 7, 65536):  # chunking must not change anything
        torch.testing.assert_close(render_image(_analytic, h, w, chunk=chunk), expected, rtol=0, atol=0)


def test_render_image_superresolution_consistent():
    h, w = 6, 10
    img1 = render_image(_analytic, h, w)
    img2 = render_image(_analytic, 2 * h, 2 * w, chunk=17)
    assert img2.shape == (2 * h, 2 * w, 3)
    # A linear field: each 2x2 block of the 2x render averages to the 1x pixel.
    pooled = img2.view(h, 2, w, 2, 3).mean(dim=(1, 3))
    torch.testing.assert_close(pooled, img1, rtol=0, atol=1e-6)
    # A crop renders the same values as the corresponding part of the full 2x image.
    crop = render_image(_analytic, h, w, crop=(-1, -1, 0, 0))  # top-left quadrant at 2x density
    torch.testing.assert_close(crop, img2[:h, :w], rtol=0, atol=1e-6)


def test_render_image_accepts_batched_and_1d_outputs():
    batched = render_image(lambda xy: _analytic(xy).unsqueeze(0), 3, 4)
    assert batched.shape == (3, 4, 3)
    flat = render_image(lambda xy: xy[:, 0], 3, 4)
    assert flat.shape == (3, 4, 1)


def test_render_image_no_grad():
    w = torch.ones(2, 1, requires_grad=True)
    out = render_image(lambda xy: xy @ w, 4, 4)
    assert not out.requires_grad


# ---------------------------------------------------------------------------------------------
# saving


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_save_reload_8bit_exact(tmp_path, channels):
    a = RNG.integers(0, 256, (10, 12, channels), dtype=np.uint8)
    img = torch.from_numpy(a.astype(np.float32) / 255)
    path = tmp_path / "out.png"
    save_image(path, img)
    assert torch.equal(load_image(path), img)
    on_disk = iio.imread(path)
    assert on_disk.dtype == np.uint8
    assert on_disk.shape == ((10, 12) if channels == 1 else (10, 12, channels))  # gray stays gray
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # no temporary file left behind


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_save_reload_16bit_exact(tmp_path, channels):
    a = RNG.integers(0, 65536, (9, 7, channels)).astype(np.uint16)
    img = torch.from_numpy(a.astype(np.float64) / 65535)
    path = tmp_path / "out16.png"
    save_image(path, img, bits=16)
    np.testing.assert_array_equal(np.round(load_image(path).double().numpy() * 65535).astype(np.uint16), a)


def test_save_clips_and_overwrites_atomically(tmp_path):
    path = tmp_path / "sub" / "x.png"  # missing folder is created
    save_image(path, torch.zeros(3, 3, 3))
    save_image(path, torch.tensor([[[-1.0, 0.5, 2.0]]]).expand(2, 2, 3))
    got = iio.imread(path)
    assert got[0, 0].tolist() == [0, 128, 255]
    assert sorted(os.listdir(tmp_path / "sub")) == ["x.png"]


def test_save_16bit_requires_png(tmp_path):
    with pytest.raises(InputError, match="16-bit"):
        save_image(tmp_path / "x.jpg", torch.zeros(2, 2, 3), bits=16)


def test_to_uint8():
    out = to_uint8(torch.tensor([[[0.0], [0.5], [1.0], [1.5], [-0.2], [float("nan")]]]))
    assert out.dtype == np.uint8 and out.shape == (1, 6, 1)
    assert out.ravel().tolist() == [0, 128, 255, 255, 0, 0]


def test_downscale_image_box_average():
    img = torch.rand(8, 6, 2)
    small = downscale_image(img, 4)  # longer side 8 -> 4, factor 2
    torch.testing.assert_close(small, img.view(4, 2, 3, 2, 2).mean(dim=(1, 3)))
    with pytest.raises(InputError):
        downscale_image(img, 16)


# ---------------------------------------------------------------------------------------------
# metrics


def test_mse_and_psnr_known_values():
    a = torch.zeros(4, 4, 3)
    b = torch.full((4, 4, 3), 0.1)
    torch.testing.assert_close(mse(a, b), torch.tensor(0.01))
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-5)
    assert psnr_from_mse(0.01) == pytest.approx(20.0)
    assert psnr_from_mse(1e-4) == pytest.approx(40.0)
    assert psnr_from_mse(0.04, max_val=2.0) == pytest.approx(20.0)
    assert psnr(a, a) == float("inf")
    assert isinstance(psnr(a, b), float)


def test_mse_is_differentiable():
    p = torch.zeros(2, 2, requires_grad=True)
    mse(p, torch.ones(2, 2)).backward()
    torch.testing.assert_close(p.grad, torch.full((2, 2), -0.5))


def _skimage_ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(target.double().numpy(), pred.double().numpy(), channel_axis=-1,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=1.0))


def test_ssim_matches_skimage_random_pair():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(40, 53, 3, generator=g)
    b = (a + 0.3 * torch.rand(40, 53, 3, generator=g) - 0.15).clamp(0, 1)
    assert ssim(b, a) == pytest.approx(_skimage_ssim(b, a), abs=1e-4)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_skimage_real_pair():
    from scenes import load_image_scene

    cam = load_image_scene("camera")
    noisy = _noisy(cam, 0.05)
    assert ssim(noisy, cam) == pytest.approx(_skimage_ssim(noisy, cam), abs=1e-4)
    astro = load_image_scene("astronaut", size=256)
    blurred = downscale_image(astro, 128).repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert ssim(blurred, astro) == pytest.approx(_skimage_ssim(blurred, astro), abs=1e-4)


def test_ssim_rejects_tiny_and_mismatched():
    with pytest.raises(ValueError):
        ssim(torch.rand(8, 8, 1), torch.rand(8, 8, 1))
    with pytest.raises(ValueError):
        ssim(torch.rand(16, 16, 1), torch.rand(16, 16, 3))
