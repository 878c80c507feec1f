"""INR bitstreams: fit an image, quantise, entropy code, and the `.inrz` container.

    plan = plan_doh(h, w, c, bits=8, bpp=0.3)               # latent size and field for the rate
    data, figures = compress(image, plan, FitSettings(max_seconds=60))
    image = decode_image(from_bytes(data, "x.inrz"), scale=2)

Methods: "doh" (D'OH, `inr.hyper.doh`: only a latent z is coded, the weights are regenerated
from a seed) and "coin" (COIN: a SIREN's own weights quantised). `quantise` (uniform, per
tensor, 4-16 bits, straight-through for training), `entropy` (one-parameter models, constriction's
ANS coder), `container` (the file format), `rate` (bpp -> latent size or width).
"""
from .container import Bitstream, from_bytes, read_file, to_bytes
from .decode import decode_image, decoded_field
from .encode import FitSettings, compress
from .rate import Plan, plan_coin, plan_doh

__all__ = ["Bitstream", "FitSettings", "Plan", "compress", "decode_image", "decoded_field", "from_bytes",
           "plan_coin", "plan_doh", "read_file", "to_bytes"]
