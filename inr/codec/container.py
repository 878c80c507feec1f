"""The `.inrz` container: a compact, self-describing, checksummed binary bitstream.

Layout (little-endian); no weight matrix is ever stored, only coded symbols:

    magic "INRZ" | version u8 | method u8 | bits u8 | height u16 | width u16 | channels u8
    field:  kind u8 | hidden layers u8 | width u16 | siren: w0 f32, w0_hidden f32
                                                   | fourier: n_features u16, sigma f32
    doh:    seed u32 | latent_dim u32 | offset f32 | n_scales u8 | scales f32 * n   (method doh only)
    steps:  n u8 | step f32 * n            (one per quantised tensor: z, or each COIN weight and bias)
    model:  kind u8 | param f64 | lo i16 | hi i16
    payload: n_bytes u32 | ANS words
    crc32 u32 of everything before it

Reading checks, in order: magic (a foreign file), version, length (a truncated file), checksum
(any flipped byte); each failure is one InputError line naming the file.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from inr.errors import InputError

from .entropy import KINDS, EntropyModel

MAGIC = b"INRZ"
VERSION = 2  # 2: D'OH signs stored as 16-latent words per row (version 1 files had bytes of 8 per row)
METHODS = ("doh", "coin")
FIELD_KINDS = ("siren", "fourier")


@dataclass
class Bitstream:
    method: str
    bits: int
    height: int
    width: int
    channels: int
    field: dict  # kind, depth (hidden layers), width, and w0/w0_hidden or n_features/sigma
    steps: list[float]
    model: EntropyModel
    payload: bytes
    seed: int = 0
    latent_dim: int = 0
    offset: float = 0.0
    scales: list[float] = field(default_factory=list)

    @property
    def n_pixels(self) -> int:
        return self.height * self.width


def to_bytes(bs: Bitstream) -> bytes:
    f = bs.field
    out = [MAGIC, struct.pack("<BBBHHB", VERSION, METHODS.index(bs.method), bs.bits, bs.height, bs.width, bs.channels),
           struct.pack("<BBH", FIELD_KINDS.index(f["kind"]), f["depth"], f["width"])]
    if f["kind"] == "siren":
        out.append(struct.pack("<ff", f["w0"], f["w0_hidden"]))
    else:
        out.append(struct.pack("<Hf", f["n_features"], f["sigma"]))
    if bs.method == "doh":
        out.append(struct.pack("<IIfB", bs.seed, bs.latent_dim, bs.offset, len(bs.scales)))
        out.append(struct.pack(f"<{len(bs.scales)}f", *bs.scales))
    out.append(struct.pack(f"<B{len(bs.steps)}f", len(bs.steps), *bs.steps))
    m = bs.model
    out.append(struct.pack("<Bdhh", KINDS.index(m.kind), m.param, m.lo, m.hi))
    out.append(struct.pack("<I", len(bs.payload)) + bs.payload)
    body = b"".join(out)
    return body + struct.pack("<I", zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data, self.name, self.pos = data, name, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise InputError(f"{self.name}: truncated .inrz file ({len(self.data)} bytes, the header alone "
                             f"needs more)")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values


def _choice(options: tuple, index: int, what: str, name: str) -> str:
    if index >= len(options):
        raise InputError(f"{name}: corrupt .inrz file (unknown {what} code {index})")
    return options[index]


def from_bytes(data: bytes, name: str) -> Bitstream:
    """Parse and verify a `.inrz` file's bytes; InputError (one line naming `name`) on any problem."""
    if len(data) < len(MAGIC) and MAGIC.startswith(data):
        raise InputError(f"{name}: truncated .inrz file ({len(data)} bytes)")
    if data[:4] != MAGIC:
        raise InputError(f"{name}: not an .inrz file (wrong magic {data[:4]!r}, expected {MAGIC!r})")
    r = _Reader(data, name)
    r.take("<4s")
    (version,) = r.take("<B")
    if version != VERSION:
        raise InputError(f"{name}: .inrz version {version} is not supported (this inr reads version {VERSION})")
    method, bits, height, width, channels = r.take("<BBHHB")
    kind, depth, hidden = r.take("<BBH")
    spec = {"kind": _choice(FIELD_KINDS, kind, "field", name), "depth": depth, "width": hidden}
    if spec["kind"] == "siren":
        spec["w0"], spec["w0_hidden"] = r.take("<ff")
    else:
        spec["n_features"], spec["sigma"] = r.take("<Hf")
    extra = {}
    method = _choice(METHODS, method, "method", name)
    if method == "doh":
        extra["seed"], extra["latent_dim"], extra["offset"], n = r.take("<IIfB")
        extra["scales"] = list(r.take(f"<{n}f"))
    (n,) = r.take("<B")
    steps = list(r.take(f"<{n}f"))
    mkind, param, lo, hi = r.take("<Bdhh")
    (size,) = r.take("<I")
    if r.pos + size + 4 != len(data):
        what = "truncated" if r.pos + size + 4 > len(data) else "has trailing bytes"
        raise InputError(f"{name}: .inrz file {what} ({len(data)} bytes, its header says {r.pos + size + 4})")
    if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise InputError(f"{name}: .inrz checksum mismatch (the file is corrupt)")
    model = EntropyModel(_choice(KINDS, mkind, "entropy model", name), param, lo, hi)
    bs = Bitstream(method, bits, height, width, channels, spec, steps, model, data[r.pos:r.pos + size], **extra)
    _check_values(bs, name)
    return bs


def _check_values(bs: Bitstream, name: str) -> None:
    """Values a checksum-valid file could still get wrong (a buggy writer): reject, never crash."""
    problems = []
    if not 4 <= bs.bits <= 16:
        problems.append(f"bit depth {bs.bits}")
    if min(bs.height, bs.width) < 1 or bs.channels not in (1, 3, 4):
        problems.append(f"image {bs.height}x{bs.width}x{bs.channels}")
    if bs.field["width"] < 1 or bs.field["depth"] < 1:
        problems.append("field shape")
    if bs.method == "doh" and bs.latent_dim < 1:
        problems.append("latent size 0")
    if not 0.0 < bs.model.param < 1.0 or bs.model.lo > bs.model.hi:
        problems.append("entropy model")
    if not all(s > 0 and s < float("inf") for s in bs.steps):
        problems.append("step sizes")
    if problems:
        raise InputError(f"{name}: corrupt .inrz file (invalid {', '.join(problems)})")


def read_file(path) -> Bitstream:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an .inrz file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    if not data:
        raise InputError(f"{path}: file is empty (0 bytes)")
    return from_bytes(data, str(path))
