"""Rate-distortion of the image codec against COIN, JPEG, WebP and AVIF; one JSON line.

    python benchmarks/rate_distortion.py [--images a.png ...] [--size 128] [--seconds 30] [--steps 3000]
        [--latents 300 600 1200] [--coin-widths 8 12 18] [--qualities 5 10 20 40 70]
        [--decode-full] [--encode-full-seconds 240] [--threads 2]

Images: every kodim*.png in ../shared/data/images (the Kodak suite), downscaled so the longer
side is --size (768x512 at full size; the default is smaller, so a 2-core CPU finishes).
Per image and codec point: bits per pixel from the written file's size, PSNR and SSIM of the
decoded 8-bit image, encode and decode seconds. D'OH runs at each --latents size (8 bits), COIN
at each --coin-widths width (16-bit weights, as in the COIN paper), JPEG/WebP/AVIF through Pillow
at each quality (AVIF is skipped with a note where Pillow lacks it).

Summary: BD-rate (Bjontegaard: cubic fit of log-rate against PSNR, integrated over the PSNR
range both curves cover; negative = D'OH needs fewer bits) of D'OH against COIN and against JPEG,
per image and averaged; for the issue's targets, the share of D'OH points above COIN (COIN's
log-linearly interpolated PSNR at the same rate, where both cover it) and above JPEG at <= 0.3 bpp.
--decode-full times decoding a 768x512 file planned for 0.3 bpp (the decoder's cost does not depend
on how well the latent was fitted, so it is fitted for a few steps only); --encode-full-seconds
runs one full-size 0.3 bpp encode with that time budget.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inr.backends import Backend  # noqa: E402
from inr.codec import FitSettings, compress, decode_image, from_bytes, plan_coin, plan_doh  # noqa: E402
from inr.signals.image import downscale_image, load_image, to_uint8  # noqa: E402
from inr.signals.metrics import psnr, ssim  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "images"  # ../shared/data beside the project (pass --images from a worktree)


def bd_rate(anchor: list[dict], test: list[dict]) -> float | None:
    """Bjontegaard delta rate (%) of `test` against `anchor` (points with bpp and psnr)."""
    if len(anchor) < 2 or len(test) < 2:
        return None
    ra, da = np.log([p["bpp"] for p in anchor]), np.array([p["psnr"] for p in anchor])
    rt, dt = np.log([p["bpp"] for p in test]), np.array([p["psnr"] for p in test])
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    if hi <= lo:
        return None
    fa = np.polyint(np.polyfit(da, ra, min(3, len(da) - 1)))
    ft = np.polyint(np.polyfit(dt, rt, min(3, len(dt) - 1)))
    diff = ((np.polyval(ft, hi) - np.polyval(ft, lo)) - (np.polyval(fa, hi) - np.polyval(fa, lo))) / (hi - lo)
    return round(float((np.exp(diff) - 1) * 100), 2)


def above(test: list[dict], anchor: list[dict], max_bpp: float = float("inf")) -> list[bool]:
    """For each test point inside the anchor's rate range (and <= max_bpp): is its PSNR higher than
    the anchor's, interpolated linearly in log-rate?"""
    pts = sorted(anchor, key=lambda p: p["bpp"])
    r = np.log([p["bpp"] for p in pts])
    d = [p["psnr"] for p in pts]
    out = []
    for p in test:
        if p["bpp"] <= max_bpp and r[0] <= np.log(p["bpp"]) <= r[-1]:
            out.append(bool(p["psnr"] > np.interp(np.log(p["bpp"]), r, d)))
    return out


def pillow_point(image: torch.Tensor, fmt: str, quality: int) -> dict:
    from PIL import Image

    arr = to_uint8(image)
    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    t0 = time.perf_counter()
    buf = io.BytesIO()
    pil.save(buf, format=fmt, quality=quality)
    t1 = time.perf_counter()
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        decoded = np.asarray(im.convert(pil.mode))
    t2 = time.perf_counter()
    dec = torch.from_numpy(decoded.reshape(image.shape).astype(np.float32) / 255)
    h, w, _ = image.shape
    return {"quality": quality, "bpp": round(8 * len(data) / (h * w), 5), "psnr": round(psnr(dec, image), 3),
            "ssim": round(ssim(dec, image), 4), "encode_seconds": round(t1 - t0, 4), "decode_seconds": round(t2 - t1, 4)}


def inr_point(image: torch.Tensor, plan, fit: FitSettings, backend: Backend) -> dict:
    data, stats = compress(image, plan, fit, backend)
    keep = ("bpp", "psnr", "ssim", "bits", "latent_dim", "steps", "encode_seconds", "decode_seconds", "rate_met")
    return {"width": plan.spec["width"], **{k: stats[k] for k in keep if k in stats}}


def avif_available() -> bool:
    try:
        from PIL import features

        return bool(features.check("avif"))
    except Exception:
        return False


def full_size_decode(path: Path, fit_seconds: float | None, backend: Backend) -> dict:
    image = load_image(path)[..., :3]
    h, w, c = image.shape
    plan = plan_doh(h, w, c, 8, bpp=0.3)
    fit = FitSettings(steps=100000 if fit_seconds else 2, max_seconds=fit_seconds, batch_size=1 << 14)
    t0 = time.perf_counter()
    data, stats = compress(image, plan, fit, backend)
    encode = time.perf_counter() - t0
    bs = from_bytes(data, path.stem + ".inrz")
    times = []
    for _ in range(2):
        t = time.perf_counter()
        decoded = decode_image(bs)
        times.append(time.perf_counter() - t)
    out = {"image": path.stem, "height": h, "width": w, "bpp": stats["bpp"], "latent_dim": plan.latent_dim,
           "field_width": plan.spec["width"], "decode_seconds": round(min(times), 3),
           "decoded_shape": list(decoded.shape)}
    if fit_seconds:
        out.update(encode_seconds=round(encode, 1), psnr=stats["psnr"], ssim=stats["ssim"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=None)
    ap.add_argument("--size", type=int, default=128, help="longer side after downscaling (768 = full Kodak)")
    ap.add_argument("--seconds", type=float, default=30.0, help="training seconds per INR fit")
    ap.add_argument("--steps", type=int, default=3000, help="training steps per INR fit (whichever ends first)")
    ap.add_argument("--latents", type=int, nargs="+", default=[300, 600, 1200])
    ap.add_argument("--coin-widths", type=int, nargs="+", default=[8, 12, 18])
    ap.add_argument("--qualities", type=int, nargs="+", default=[5, 10, 20, 40, 70])
    ap.add_argument("--decode-full", action="store_true")
    ap.add_argument("--encode-full-seconds", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    backend = Backend(args.backend)
    paths = [Path(p) for p in args.images] if args.images else sorted(DATA.glob("kodim*.png"))
    if not paths:
        print(json.dumps({"skipped": f"no images (looked in {DATA})"}))
        return
    formats = ["JPEG", "WEBP"] + (["AVIF"] if avif_available() else [])
    fit = FitSettings(steps=args.steps, max_seconds=args.seconds)
    results, bd_coin, bd_jpeg, vs_coin, vs_jpeg = {}, [], [], [], []
    for path in paths:
        image = load_image(path)[..., :3]
        if args.size < max(image.shape[:2]):
            image = downscale_image(image, args.size)
        h, w, c = image.shape
        row = {"height": h, "width": w}
        row["doh"] = [inr_point(image, plan_doh(h, w, c, 8, latent_dim=k), fit, backend) for k in args.latents]
        row["coin"] = [inr_point(image, plan_coin(h, w, c, 16, field_width=wd), fit, backend) for wd in args.coin_widths]
        for fmt in formats:
            row[fmt.lower()] = [pillow_point(image, fmt, q) for q in args.qualities]
        row["bd_rate_doh_vs_coin"] = bd_rate(row["coin"], row["doh"])
        row["bd_rate_doh_vs_jpeg"] = bd_rate(row["jpeg"], row["doh"])
        vs_coin += above(row["doh"], row["coin"])
        vs_jpeg += above(row["doh"], row["jpeg"], max_bpp=0.3)
        results[path.stem] = row
        print(f"{path.stem}: BD-rate vs COIN {row['bd_rate_doh_vs_coin']}, vs JPEG {row['bd_rate_doh_vs_jpeg']}",
              file=sys.stderr, flush=True)
    for row in results.values():
        if row["bd_rate_doh_vs_coin"] is not None:
            bd_coin.append(row["bd_rate_doh_vs_coin"])
        if row["bd_rate_doh_vs_jpeg"] is not None:
            bd_jpeg.append(row["bd_rate_doh_vs_jpeg"])
    summary = {
        "settings": {"size": args.size, "seconds_per_fit": args.seconds, "steps": args.steps, "latents": args.latents,
                     "coin_widths": args.coin_widths, "qualities": args.qualities, "threads": args.threads,
                     "backend": args.backend, "formats": formats,
                     "avif": "Pillow with AVIF" if "AVIF" in formats else "skipped: Pillow without AVIF support"},
        "bd_rate_doh_vs_coin_mean": round(statistics.mean(bd_coin), 2) if bd_coin else None,
        "bd_rate_doh_vs_jpeg_mean": round(statistics.mean(bd_jpeg), 2) if bd_jpeg else None,
        "doh_above_coin": f"{sum(vs_coin)}/{len(vs_coin)} D'OH points inside COIN's rate range",
        "doh_above_jpeg_le_0.3bpp": f"{sum(vs_jpeg)}/{len(vs_jpeg)} D'OH points at <= 0.3 bpp inside JPEG's range",
        "images": results,
    }
    if args.decode_full or args.encode_full_seconds:
        summary["full_size"] = full_size_decode(paths[-1], args.encode_full_seconds, backend)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
