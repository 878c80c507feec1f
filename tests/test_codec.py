"""The image codec end to end: `inr compress image` / `inr decompress` round trips reach a PSNR,
decode bitwise in a fresh process, store no weight matrix, and every corrupt file is one line."""
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inr.cli.main import main
from inr.codec import container, entropy
from inr.codec.quantise import dequantise, fake_quantise, quantise, step_for
from inr.codec.rate import header_bytes
from inr.codec.targets import field_spec, n_params
from inr.hyper import mlp_parameters
from inr.codec.targets import build_target
from test_cli_image import _fails  # one line, exit 2, naming the needles

FAST = ["--steps", "150", "--quiet", "--backend", "torch"]
DOH = ["--latent-dim", "300", "--width", "32", "--lr", "0.02", *FAST]


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """A 24x32 RGB picture: smooth colour ramps and one soft edge."""
    y, x = np.mgrid[0:24, 0:32] / 32.0
    img = np.stack([0.5 + 0.4 * np.sin(4 * x + 2 * y), 0.2 + 0.6 / (1 + np.exp(-12 * (x - 0.5))), 0.5 + 0.3 * np.cos(5 * y)], -1)
    path = tmp_path_factory.mktemp("img") / "small.png"
    iio.imwrite(path, (img * 255).round().astype(np.uint8))
    return path


def _compress(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["compress", "image", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def coded(image, tmp_path_factory):
    out = tmp_path_factory.mktemp("codec") / "small.inrz"
    assert main(["compress", "image", str(image), "-o", str(out), *DOH]) == 0
    return out


@pytest.mark.slow
def test_doh_round_trip_reaches_psnr_and_stores_no_weight_matrix(image, coded, tmp_path, capsys):
    png = tmp_path / "d.png"
    assert main(["decompress", str(coded), "-o", str(png)]) == 0
    decoded = iio.imread(png).astype(np.float64) / 255
    target = iio.imread(image).astype(np.float64) / 255
    psnr = 10 * np.log10(1 / np.mean((decoded - target) ** 2))
    assert psnr > 21.5, psnr  # 150 steps of a 300-latent code on a smooth 24x32 image (22.5 dB measured)
    # no weight matrix: 300 symbols at <= 8 bits plus the header, well under the field's one 32x32 layer
    spec = field_spec("siren", 32, 3)
    size = coded.stat().st_size
    assert size <= header_bytes("doh", spec, 3, 1, 8) + 300 + 4
    assert size < 32 * 32 < n_params(spec, 3)
    bs = container.read_file(coded)
    assert (bs.method, bs.latent_dim, bs.height, bs.width, bs.field["width"]) == ("doh", 300, 24, 32, 32)


DECODE = """
import sys
from inr.cli.main import main
sys.exit(main(["decompress", sys.argv[1], "-o", sys.argv[2]]))
"""


@pytest.mark.slow
def test_decode_in_a_fresh_process_is_bitwise_identical(coded, tmp_path):
    here = tmp_path / "here.png"
    assert main(["decompress", str(coded), "-o", str(here)]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # another thread count too
    there = tmp_path / "there.png"
    subprocess.run([sys.executable, "-c", DECODE, str(coded), str(there)], check=True, env=env, capture_output=True)
    assert here.read_bytes() == there.read_bytes()


@pytest.mark.slow
def test_super_resolution_scale(coded, tmp_path):
    png = tmp_path / "x2.png"
    assert main(["decompress", str(coded), "-o", str(png), "--scale", "2"]) == 0
    assert iio.imread(png).shape == (48, 64, 3)


@pytest.mark.slow
def test_coin_round_trip_and_bpp_sets_the_rate(image, tmp_path, capsys):
    out = tmp_path / "coin.inrz"
    stats = _compress(capsys, image, "-o", out, "--method", "coin", "--bpp", "6", *FAST, "--steps", "400")
    assert stats["psnr"] > 22.0 and stats["bpp"] <= 6.0 and stats["rate_met"], stats
    assert stats["bpp"] == pytest.approx(8 * out.stat().st_size / (24 * 32))
    assert main(["decompress", str(out), "-o", str(tmp_path / "c.png")]) == 0
    stats = _compress(capsys, image, "-o", tmp_path / "d.inrz", "--bpp", "2.5", *FAST)
    assert stats["bpp"] <= 2.5 and stats["rate_met"] and stats["latent_dim"] > 100, stats


def test_unreachable_bpp_names_the_smallest_rate(image, tmp_path, capsys):
    _fails(["compress", "image", str(image), "-o", str(tmp_path / "x.inrz"), "--bpp", "0.01"], capsys,
           "--bpp 0.01", "smallest rate", "bpp")
    _fails(["compress", "image", str(image), "-o", str(tmp_path / "x.inrz"), "--method", "coin", "--bpp", "0.5"],
           capsys, "smallest rate")
    _fails(["compress", "image", str(image), "-o", str(tmp_path / "x.inrz"), "--latent-dim", "5000", "--width", "8"],
           capsys, "largest rate")
    assert not (tmp_path / "x.inrz").exists()


def _corrupt_cases(data: bytes) -> dict[str, tuple[bytes, str]]:
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    wrong_version = bytearray(data)
    wrong_version[4] = 9
    first_version = bytearray(data)
    first_version[4] = 1  # version 1 laid P out row by row: its files must be refused, not misdecoded
    return {"truncated": (data[: len(data) - 7], "truncated"), "header-only": (data[:12], "truncated"),
            "magic": (b"GIF89a" + data[6:], "not an .inrz file"), "version": (bytes(wrong_version), "version 9"),
            "version-1": (bytes(first_version), "version 1 is not supported"),
            "flipped": (bytes(flipped), "checksum mismatch"), "empty": (b"", "empty")}


@pytest.mark.slow
def test_each_corrupt_file_is_one_line_and_writes_nothing(coded, tmp_path, capsys):
    for case, (data, needle) in _corrupt_cases(coded.read_bytes()).items():
        bad = tmp_path / f"{case}.inrz"
        bad.write_bytes(data)
        png = tmp_path / f"{case}.png"
        _fails(["decompress", str(bad), "-o", str(png)], capsys, str(bad), needle)
        assert not png.exists(), case
    _fails(["decompress", str(tmp_path / "missing.inrz"), "-o", str(tmp_path / "m.png")], capsys, "no such file")


@pytest.mark.slow
def test_a_valid_checksum_over_invalid_values_is_rejected(coded):
    data = bytearray(coded.read_bytes()[:-4])
    data[6] = 40  # bits
    data += struct.pack("<I", zlib.crc32(bytes(data)))
    with pytest.raises(container.InputError, match="invalid bit depth"):
        container.from_bytes(bytes(data), "x.inrz")


def test_quantiser_error_and_straight_through_gradient():
    x = torch.randn(1000)
    for bits in (4, 8, 16):
        step = step_for(x, bits)
        q = quantise(x, step, bits)
        assert q.abs().max() <= 2 ** (bits - 1) - 1
        assert (dequantise(q, step) - x).abs().max() <= step / 2 + 1e-7
    x.requires_grad_(True)
    fake_quantise(x, 4).sum().backward()
    assert torch.equal(x.grad, torch.ones(1000))


def test_entropy_coder_round_trip_near_entropy():
    rng = np.random.default_rng(0)
    symbols = np.round(rng.laplace(0, 6, 5000)).astype(np.int64)
    model, payload = entropy.best_code(symbols)
    assert np.array_equal(entropy.decode(payload, model, 5000), symbols)
    _, counts = np.unique(symbols, return_counts=True)
    p = counts / counts.sum()
    empirical = -(p * np.log2(p)).sum() * 5000 / 8
    assert len(payload) < 1.05 * empirical + 8  # within 5% of the empirical entropy


def test_coin_field_params_count_matches_the_field():
    for spec in (field_spec("siren", 12, 2), field_spec("fourier", 20, 3, n_features=7)):
        assert n_params(spec, 3) == sum(t.numel for t in mlp_parameters(build_target(spec, 3)).values())


@pytest.mark.slow
def test_fourier_target_round_trip(image, tmp_path, capsys):
    out = tmp_path / "fourier.inrz"
    stats = _compress(capsys, image, "-o", out, "--field", "fourier", "--latent-dim", "200", "--width", "32",
                      "--lr", "0.02", *FAST)
    # 12.7 dB measured: the ReLU Fourier MLP learns slowly (its own weights reach 17 dB in these 150 steps)
    assert stats["field"]["kind"] == "fourier" and stats["psnr"] > 11.5, stats
    png = tmp_path / "f.png"
    assert main(["decompress", str(out), "-o", str(png)]) == 0
    decoded = iio.imread(png).astype(np.float64) / 255
    target = iio.imread(image).astype(np.float64) / 255
    assert 10 * np.log10(1 / np.mean((decoded - target) ** 2)) == pytest.approx(stats["psnr"], abs=0.01)
