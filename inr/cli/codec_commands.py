"""`inr compress image` and `inr decompress`: an image to an `.inrz` bitstream and back."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from inr.errors import InputError

from .options import add_backend_options, backend_option

DEFAULT_BITS = {"doh": 8, "coin": 16}  # COIN's paper stores 16-bit weights


def add_parsers(commands) -> None:
    p = commands.add_parser("compress", help="compress a signal into an .inrz bitstream (D'OH or COIN)")
    kinds = p.add_subparsers(dest="signal", metavar="SIGNAL", required=True)
    c = kinds.add_parser("image", help="fit, quantise and entropy code an image",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("input", metavar="IN", help="image file (PNG, JPEG, TIFF)")
    c.add_argument("-o", "--output", required=True, metavar="OUT.inrz", help="bitstream to write")
    rate = c.add_mutually_exclusive_group()
    rate.add_argument("--bpp", type=float, default=None,
                      help="target bits per pixel: picks the latent size (D'OH) or width (COIN) and the bit depth "
                           "(default 0.3 when neither --latent-dim nor --width is given)")
    rate.add_argument("--latent-dim", type=int, default=None, help="D'OH latent size K (sets the rate directly)")
    c.add_argument("--method", choices=("doh", "coin"), default="doh",
                   help="doh: code a latent, weights regenerated from a seed; coin: code a SIREN's own weights")
    c.add_argument("--bits", type=int, default=None, help="quantiser bit depth, 4-16 (default: doh 8, coin 16)")
    c.add_argument("--field", choices=("siren", "fourier"), default="siren", help="D'OH's target field")
    c.add_argument("--width", type=int, default=None, help="hidden width of the field (default: from the rate)")
    c.add_argument("--depth", type=int, default=3, help="hidden layers of the field")
    c.add_argument("--steps", type=int, default=2000, help="training steps")
    c.add_argument("--max-seconds", type=float, default=240.0,
                   help="stop training after this many seconds (the default keeps an encode within 5 minutes)")
    c.add_argument("--batch-size", type=int, default=1 << 16, help="pixels per training step")
    c.add_argument("--lr", type=float, default=None, help="Adam's rate (default: doh 3e-2 on z, coin 1e-3)")
    c.add_argument("--qat", type=float, default=0.25, help="share of training through the quantiser (straight-through)")
    c.add_argument("--seed", type=int, default=0, help="seed of D'OH's projections and of the initialisation")
    c.add_argument("--offset", type=float, default=0.7, help="D'OH: share of theta_0 in the weights, [0, 1)")
    c.add_argument("--z-std", type=float, default=0.0,
                   help="D'OH: std of the latent's initial draw (0: start from theta_0 alone)")
    c.add_argument("--no-learn-scales", dest="learn_scales", action="store_false",
                   help="D'OH: no learned per-layer scales")
    c.add_argument("--size", type=int, default=None, metavar="PIXELS", help="downscale the image's longer side first")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    add_backend_options(c)
    c.set_defaults(handler=compress_image_command)

    d = commands.add_parser("decompress", help="decode an .inrz bitstream to a PNG",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("input", metavar="IN.inrz", help="bitstream written by inr compress")
    d.add_argument("-o", "--output", required=True, metavar="OUT.png", help="image to write (PNG)")
    d.add_argument("--scale", type=float, default=1.0, help="resolution relative to the coded image")
    d.set_defaults(handler=decompress_command)


def _check(args) -> None:
    positive = {"--steps": args.steps, "--batch-size": args.batch_size, "--depth": args.depth,
                "--max-seconds": args.max_seconds, "--bpp": args.bpp,
                "--latent-dim": args.latent_dim, "--width": args.width, "--size": args.size}
    for flag, value in positive.items():
        if value is not None and not value > 0:
            raise InputError(f"{flag} must be positive, got {value}")
    if not 4 <= args.bits <= 16:
        raise InputError(f"--bits must be between 4 and 16, got {args.bits}")
    if not 0 <= args.offset < 1:
        raise InputError(f"--offset must be in [0, 1), got {args.offset}")
    if not args.z_std >= 0:
        raise InputError(f"--z-std must be >= 0, got {args.z_std}")
    if not 0 <= args.qat <= 1:
        raise InputError(f"--qat must be in [0, 1], got {args.qat}")
    if not 0 <= args.seed < 2**32:
        raise InputError(f"--seed must be in [0, 2^32), got {args.seed}")
    if args.method == "coin" and (args.latent_dim is not None or args.field != "siren"):
        raise InputError("--method coin codes a SIREN's weights: --latent-dim and --field fourier are D'OH options")


def compress_image_command(args) -> int:
    from inr.atomic import atomic_write_bytes
    from inr.codec import FitSettings, compress, plan_coin, plan_doh
    from inr.signals.image import downscale_image, load_image

    args.bits = args.bits or DEFAULT_BITS[args.method]
    _check(args)
    backend = backend_option(args)
    image = load_image(args.input)
    if args.size:
        image = downscale_image(image, args.size)
    h, w, c = image.shape
    if args.bpp is None and args.latent_dim is None and args.width is None:
        args.bpp = 0.3
    if args.method == "doh":
        plan = plan_doh(h, w, c, args.bits, bpp=args.bpp, latent_dim=args.latent_dim, kind=args.field,
                        field_width=args.width, depth=args.depth, learn_scales=args.learn_scales)
    else:
        plan = plan_coin(h, w, c, args.bits, bpp=args.bpp, field_width=args.width, depth=args.depth)
    fit = FitSettings(steps=args.steps, max_seconds=args.max_seconds, lr=args.lr, qat=args.qat, seed=args.seed,
                      batch_size=args.batch_size,
                      offset=args.offset, z_std=args.z_std, learn_scales=args.learn_scales)
    data, stats = compress(image.clamp(0, 1), plan, fit, backend, quiet=args.quiet)
    atomic_write_bytes(args.output, data)
    print(json.dumps({"output": args.output, **stats}))
    return 0


def decompress_command(args) -> int:
    from inr.codec import decode_image, read_file
    from inr.signals.image import save_image

    if Path(args.output).suffix.lower() != ".png":
        raise InputError(f"{args.output}: decompress writes PNG files (use a .png name)")
    if not args.scale > 0:
        raise InputError(f"--scale must be positive, got {args.scale}")
    bs = read_file(args.input)
    image = decode_image(bs, args.scale, name=args.input)
    save_image(args.output, image)
    print(json.dumps({"output": args.output, "height": image.shape[0], "width": image.shape[1],
                      "channels": image.shape[2], "method": bs.method}))
    return 0
