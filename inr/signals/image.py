"""Images as signals: loading, pixel coordinates, batch sampling, rendering and saving.

Coordinates follow DESIGN.md §6: pixel *centres* in [-1, 1]^2, x to the right, y down, listed in
row-major pixel order, so ``image.reshape(-1, C)`` and ``pixel_coords(H, W)`` line up row by row.
Pixel values are float32 in [0, 1] for integer files; float files (float TIFF, EXR) keep their
values unclipped, since HDR images are legitimately outside [0, 1].
"""
from __future__ import annotations

import logging
import os
import struct
import warnings
import zlib
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..atomic import atomic_write_bytes
from ..errors import InputError

__all__ = ["load_image", "pixel_coords", "PixelSampler", "render_image", "save_image", "to_uint8",
           "downscale_image"]

Crop = Sequence[float]  # (x0, y0, x1, y1) in [-1, 1] image coordinates

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


# ----------------------------------------------------------------------------------------------
# Loading


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a float32 tensor [H, W, C] with C in {1, 3, 4}.

    - 8-bit files are divided by 255, 16-bit by 65535 (also 16-bit colour PNGs, which Pillow
      alone would truncate to 8 bits); float files (TIFF, EXR) keep their values as they are.
    - Gray stays one channel; gray + alpha becomes RGBA (gray repeated), so consumers only ever
      see 1, 3 or 4 channels; palette images become RGB(A).
    - Multi-frame files (GIF, APNG, multi-page TIFF): the first frame.
    - Any problem (missing file, directory, empty or corrupt file, unsupported shape, NaN/inf
      pixels) raises `InputError` with one line naming the file.

    >>> img = load_image("photo.png")        # doctest: +SKIP
    >>> img.shape, img.dtype                  # doctest: +SKIP
    (torch.Size([512, 512, 3]), torch.float32)
    """
    p = os.fspath(path)
    _check_file(p)
    try:
        arr = _read_first_frame(p)
    except InputError:
        raise
    except Exception as e:  # imageio/Pillow/tifffile raise many types for a bad file
        raise InputError(f"{p}: cannot read image, corrupt or unsupported format ({_reason(e)})") from e
    return torch.from_numpy(_normalise(arr, p))


def _check_file(p: str) -> None:
    if not os.path.exists(p):
        raise InputError(f"{p}: no such file")
    if os.path.isdir(p):
        raise InputError(f"{p}: is a directory, not an image file")
    if not os.path.isfile(p):
        raise InputError(f"{p}: not a regular file")
    if os.path.getsize(p) == 0:
        raise InputError(f"{p}: file is empty (0 bytes)")
    try:
        with open(p, "rb"):
            pass
    except OSError as e:
        raise InputError(f"{p}: cannot open ({e.strerror or _one_line(e)})") from e


def _reason(e: BaseException) -> str:
    msg = _one_line(e)
    if "Could not find a backend" in msg or "can not handle the given uri" in msg:
        return "no installed reader recognises it"
    if isinstance(e, (KeyError, IndexError)) or len(msg.split()) < 3:  # e.g. KeyError(0)
        return f"{type(e).__name__}: {msg}"
    return msg


def _one_line(e: BaseException, limit: int = 200) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _read_first_frame(p: str) -> np.ndarray:
    with open(p, "rb") as f:
        head = f.read(8)
    if head.startswith(_PNG_MAGIC):
        arr = _read_png16(p)
        if arr is not None:
            return arr
    elif head[:4] in _TIFF_MAGICS:
        arr = _read_tiff(p)
        if arr is not None:
            return arr
    import imageio.v3 as iio

    with warnings.catch_warnings():  # imageio probing its legacy plugins on an unknown file
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.asarray(iio.imread(p, index=0))


def _read_png16(p: str) -> np.ndarray | None:
    """16-bit colour PNGs, exactly; None for every other PNG (imageio reads those fine).

    Pillow stores 16-bit RGB/RGBA/LA PNGs in 8-bit modes, dropping the low byte. Its PNG decoder
    still unfilters all 16 bits, so we decode twice with raw modes of the same bit depth: the
    big-endian one keeps the high bytes, the little-endian one the low bytes (LA's 4 bytes per
    pixel go losslessly through the 8-bit RGBA raw mode). Internal API use is guarded: on any
    surprise we return None and imageio reads the file at 8-bit precision.
    """
    from PIL import Image

    with Image.open(p) as im:
        tile = list(getattr(im, "tile", []) or [])
    if len(tile) != 1 or not isinstance(getattr(tile[0], "args", None), str):
        return None  # not one zip tile with a raw mode string (or an older Pillow)
    raw = tile[0].args
    variants = {"RGB;16B": ("RGB;16B", "RGB;16L"), "RGBA;16B": ("RGBA;16B", "RGBA;16L"),
                "LA;16B": ("RGBA",)}
    if raw not in variants:
        return None
    try:
        planes = []
        for rawmode in variants[raw]:
            with Image.open(p) as im:
                im.tile = [tile[0]._replace(args=rawmode)]
                im.load()
                planes.append(np.asarray(im).astype(np.uint16))
    except (AttributeError, TypeError, KeyError):  # a Pillow without these internals
        return None
    if raw == "LA;16B":
        b = planes[0]  # bytes L_hi, L_lo, A_hi, A_lo in the R, G, B, A slots
        return np.stack([(b[..., 0] << 8) | b[..., 1], (b[..., 2] << 8) | b[..., 3]], axis=-1)
    return (planes[0] << 8) | planes[1]


def _read_tiff(p: str) -> np.ndarray | None:
    """First page of a TIFF via tifffile (imageio's index=0 is the first *series*, which for
    multi-page files is the whole stack); planar (SYX) pages become YXS."""
    try:
        import tifffile
    except ImportError:
        return None
    log = logging.getLogger("tifffile")  # it logs corrupt-file details we report ourselves
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        return _read_tiff_page(tifffile, p)
    finally:
        log.setLevel(level)


def _read_tiff_page(tifffile, p: str) -> np.ndarray:
    with tifffile.TiffFile(p) as tif:
        page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
        arr = page.asarray()
        axes = getattr(page, "axes", "")
        if int(getattr(page, "photometric", -1)) == 3 and getattr(page, "colormap", None) is not None:
            return np.asarray(page.colormap).T[arr]  # palette: [2^bits, 3] lookup, uint16
    if arr.ndim == 3 and axes.startswith("S") and axes.endswith("YX"):
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _normalise(arr: np.ndarray, p: str) -> np.ndarray:
    """Integer -> [0, 1] float32; float kept; shape -> [H, W, C] with C in {1, 3, 4}."""
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    elif arr.dtype.kind == "u":
        arr = arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise InputError(f"{p}: {bad} pixel value(s) are NaN or infinite")
    else:
        raise InputError(f"{p}: unsupported pixel type {arr.dtype} (expected unsigned integer or float)")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise InputError(f"{p}: unsupported image shape {tuple(arr.shape)} (expected H x W or H x W x C)")
    h, w, c = arr.shape
    if h == 0 or w == 0:
        raise InputError(f"{p}: image has zero size {tuple(arr.shape)}")
    if c == 2:  # gray + alpha -> RGBA, so only 1, 3 or 4 channels exist downstream
        arr = np.concatenate([arr[..., :1], arr[..., :1], arr[..., :1], arr[..., 1:]], axis=-1)
    elif c not in (1, 3, 4):
        raise InputError(f"{p}: unsupported number of channels {c} (expected 1, 2, 3 or 4)")
    return np.ascontiguousarray(arr, dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# Coordinates, sampling, rendering


def _axis_centres(n: int, lo: float, hi: float, device) -> torch.Tensor:
    return lo + (torch.arange(n, dtype=torch.float64, device=device) + 0.5) * ((hi - lo) / n)


def _check_crop(crop: Crop | None) -> tuple[float, float, float, float]:
    if crop is None:
        return (-1.0, -1.0, 1.0, 1.0)
    if len(crop) != 4:
        raise ValueError(f"crop must be (x0, y0, x1, y1), got {crop!r}")
    x0, y0, x1, y1 = (float(v) for v in crop)
    return x0, y0, x1, y1


def pixel_coords(height: int, width: int, crop: Crop | None = None, *,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """Pixel-centre coordinates [H*W, 2] as (x, y), row-major (all of row 0 first).

    Without `crop` the centres tile [-1, 1]^2: x_j = (j + 0.5) / W * 2 - 1, y_i = (i + 0.5) / H * 2 - 1.
    With ``crop=(x0, y0, x1, y1)`` the window [x0, x1] x [y0, y1] is cut into H x W pixels instead,
    which gives zooms, crops and super-resolution grids in the same coordinate frame.

    >>> pixel_coords(2, 2)
    tensor([[-0.5000, -0.5000],
            [ 0.5000, -0.5000],
            [-0.5000,  0.5000],
            [ 0.5000,  0.5000]])
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height} x {width}")
    x0, y0, x1, y1 = _check_crop(crop)
    xs = _axis_centres(width, x0, x1, device)
    ys = _axis_centres(height, y0, y1, device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], dim=-1).reshape(-1, 2).to(dtype)


def _coords_slice(start: int, stop: int, height: int, width: int, crop, dtype, device) -> torch.Tensor:
    """Rows start..stop-1 of pixel_coords(height, width, crop), without building the full grid."""
    x0, y0, x1, y1 = _check_crop(crop)
    idx = torch.arange(start, stop, device=device)
    i, j = idx // width, idx % width
    x = x0 + (j.to(torch.float64) + 0.5) * ((x1 - x0) / width)
    y = y0 + (i.to(torch.float64) + 0.5) * ((y1 - y0) / height)
    return torch.stack([x, y], dim=-1).to(dtype)


class PixelSampler:
    """Random pixel batches (coords [n, 2], values [n, C]) from an image [H, W, C].

    Pixels are drawn uniformly with replacement (torch.randint: cheap and unbiased); on the CPU a
    batch comes in raster order (its indices sorted: the same distribution, and the loss is a mean),
    so the hash grid reads its table rows nearly in order: a 512x512 hash-field step was 12-14%
    faster on both backends of a 2-core CPU, sort included (0.3 ms for 2^15 pixels). When
    `batch_size >= H * W` every call returns the whole image in pixel order (full-batch training),
    the same tensors each time. Call it, or iterate over it (an endless iterator).

    >>> s = PixelSampler(torch.rand(8, 8, 3), batch_size=16, generator=torch.Generator().manual_seed(0))
    >>> xy, rgb = s()
    >>> xy.shape, rgb.shape
    (torch.Size([16, 2]), torch.Size([16, 3]))
    """

    def __init__(self, image: torch.Tensor, batch_size: int, generator: torch.Generator | None = None):
        if image.dim() != 3:
            raise ValueError(f"image must be [H, W, C], got shape {tuple(image.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.height, self.width, self.channels = image.shape
        self.batch_size = int(batch_size)
        self.generator = generator
        self.coords = pixel_coords(self.height, self.width, device=image.device)
        self.values = image.reshape(-1, self.channels)

    @property
    def n_pixels(self) -> int:
        return self.height * self.width

    @property
    def full_batch(self) -> bool:
        return self.batch_size >= self.n_pixels

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.full_batch:
            return self.coords, self.values
        # Draw on the generator's device (a CPU generator cannot fill a CUDA tensor), else in place.
        device = self.generator.device if self.generator is not None else self.values.device
        # int32 indices (the same draws as int64): sorting and gathering them is cheaper
        idx = torch.randint(self.n_pixels, (self.batch_size,), generator=self.generator, device=device,
                            dtype=torch.int32 if self.n_pixels < 2**31 else torch.int64)
        idx = idx.to(self.values.device)
        if idx.device.type == "cpu":
            idx = torch.sort(idx).values
        return self.coords.index_select(0, idx), self.values.index_select(0, idx)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield self()


def render_image(fn: Callable[[torch.Tensor], torch.Tensor], height: int, width: int, chunk: int = 65536,
                 crop: Crop | None = None, *, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Evaluate `fn` at the pixel centres of an H x W grid and return the image [H, W, C].

    `fn` maps coordinates [n, 2] (on `device`) to values [n, C] (or [n], or [1, n, C] from a
    batched field). It runs on at most `chunk` pixels at a time under torch.no_grad(), so memory
    stays bounded at any resolution: render at 2x or 4x the training size for super-resolution,
    or pass `crop` to zoom into a window. Coordinates are made on `device` (by default the device
    of `fn`'s parameters when it is an nn.Module, else the CPU); the result is on the device `fn`
    returns.

    >>> img = render_image(lambda xy: xy[:, :1] * 0 + 1, 4, 6)
    >>> img.shape
    torch.Size([4, 6, 1])
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height} x {width}")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    if device is None and isinstance(fn, torch.nn.Module):  # coordinates go where the model is
        device = next((p.device for p in fn.parameters()), None)
    n = height * width
    out = None
    with torch.no_grad():
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            y = fn(_coords_slice(start, stop, height, width, crop, dtype, device))
            if y.dim() == 3 and y.shape[0] == 1:
                y = y[0]
            if y.dim() == 1:
                y = y[:, None]
            if y.dim() != 2 or y.shape[0] != stop - start:
                raise ValueError(f"fn must return [n, C] for n = {stop - start} coordinates, got {tuple(y.shape)}")
            if out is None:
                out = torch.empty(n, y.shape[1], dtype=y.dtype, device=y.device)
            out[start:stop] = y
    return out.reshape(height, width, -1)


# ----------------------------------------------------------------------------------------------
# Resizing


def downscale_image(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Anti-aliased area (box) downscale of [H, W, C] to `size`.

    `size` is the new longer side (aspect ratio kept, rounded) or an explicit (height, width).
    Each output pixel averages the input pixels it covers (exact box filter for integer factors).
    Asking for a larger size than the image is an error: area resampling only shrinks.

    >>> downscale_image(torch.rand(512, 512, 1), 256).shape
    torch.Size([256, 256, 1])
    """
    h, w, _ = image.shape
    if isinstance(size, int):
        if size < 1:
            raise InputError(f"image size must be positive, got {size}")
        scale = size / max(h, w)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    else:
        new_h, new_w = (int(s) for s in size)
    if new_h < 1 or new_w < 1:
        raise InputError(f"image size must be positive, got {new_h} x {new_w}")
    if new_h > h or new_w > w:
        raise InputError(f"cannot downscale a {h} x {w} image to {new_h} x {new_w} (larger)")
    if (new_h, new_w) == (h, w):
        return image.clone()
    x = image.permute(2, 0, 1).unsqueeze(0)
    y = torch.nn.functional.interpolate(x.float(), size=(new_h, new_w), mode="area")
    return y[0].permute(1, 2, 0).contiguous().to(image.dtype)


# ----------------------------------------------------------------------------------------------
# Saving


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 array of the same shape (clipped, rounded; NaN -> 0).

    >>> to_uint8(torch.tensor([[[0.0], [0.5], [2.0]]])).ravel().tolist()
    [0, 128, 255]
    """
    return _quantise(image, 255).astype(np.uint8)


def _quantise(image, maxval: int) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu", torch.float64).numpy()
    a = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return np.floor(np.clip(a, 0.0, 1.0) * maxval + 0.5)


def save_image(path: str | os.PathLike, image: torch.Tensor | np.ndarray, bits: int = 8) -> None:
    """Write a float image [H, W, C] (or [H, W]) in [0, 1] to `path`, atomically.

    Values are clipped to [0, 1] and rounded to 8 bits (or 16 bits with ``bits=16``, PNG only);
    one channel is written as gray. The format follows the extension (PNG recommended; imageio
    writes the 8-bit case). The file is written to a temporary name in the same folder and then
    renamed over `path`, so a crash never leaves a torn file. Missing parent folders are created.

    >>> save_image("preview.png", torch.rand(64, 64, 3))   # doctest: +SKIP
    """
    p = os.fspath(path)
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise ValueError(f"image must be [H, W] or [H, W, C] with C in 1, 3, 4; got {tuple(arr.shape)}")
    ext = os.path.splitext(p)[1].lower()
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if bits == 16 and ext != ".png":
        raise InputError(f"{p}: 16-bit output is only supported for .png files")
    if bits == 16:
        data = _encode_png16(_quantise(arr, 65535).astype(np.uint16))
    else:
        import imageio.v3 as iio

        data = None
    try:
        if data is None:
            data = iio.imwrite("<bytes>", to_uint8(arr), extension=ext or ".png")
        atomic_write_bytes(p, data)
    except (OSError, ValueError, TypeError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{p}: cannot write image ({_one_line(e)})") from e


def _encode_png16(a: np.ndarray) -> bytes:
    """Minimal 16-bit PNG encoder (gray, RGB or RGBA). Pillow cannot write 16-bit colour PNGs.

    Every row uses the 'Up' filter (byte minus the byte above, mod 256), which compresses smooth
    images well and is a single vectorised subtraction.
    """
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    color_type = {1: 0, 3: 2, 4: 6}[c]
    rows = np.frombuffer(a.astype(">u2").tobytes(), dtype=np.uint8).reshape(h, w * c * 2)
    up = rows.copy()
    up[1:] = rows[1:] - rows[:-1]  # uint8 arithmetic wraps mod 256, as the filter wants
    data = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return _PNG_MAGIC + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data, 6)) + chunk(b"IEND", b"")
