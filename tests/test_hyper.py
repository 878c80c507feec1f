"""inr.hyper: batched hyper-conditioned fields equal B separate forwards, MIP's encoding and
initialisation, target selection, gradients into latents and hypernetwork, conditioning sources."""
import math

import pytest
import torch

from inr.fields import HashField, HashFieldConfig, SirenConfig, SirenField
from inr.hyper import (AutoDecoder, ConvEncoder, HyperConfig, HyperField, SetEncoder, build_hyper_field,
                       mip_encode, select_targets)


def siren(seed=0):
    return SirenField(2, 3, SirenConfig(hidden=(16, 16)), generator=torch.Generator().manual_seed(seed))


def small_hash():
    cfg = HashFieldConfig(grid={"n_levels": 4, "n_features_per_level": 2, "log2_hashmap_size": 8, "base_resolution": 4},
                          hidden=(16,))
    return HashField(2, 1, cfg, generator=torch.Generator().manual_seed(0))


CASES = [("full", True, None), ("full", False, None), ("film", True, None), ("shift", False, None),
         ("lowrank", True, None), ("full", True, 37)]


@pytest.mark.parametrize("mode,mip,chunk", CASES)
def test_batched_forward_equals_separate_forwards(mode, mip, chunk):
    torch.manual_seed(1)
    hf = HyperField(siren(), d_cond=5, cfg=HyperConfig(mode=mode, mip=mip, hidden=(32,), chunk_size=chunk, rank=3),
                    generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # move the head off its initial (near-identical) outputs
        for p in hf.hyper.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    b, n = 4, 50
    x, z = torch.rand(b, n, 2) * 2 - 1, torch.rand(b, 5)
    batched = hf(x, z)
    assert batched.shape == (b, n, 3)
    for i in range(b):  # float32: only the summation order differs (sines with w0 = 30 amplify it)
        plain = hf.materialize(z[i])(x[i])  # the materialised field is the same function
        torch.testing.assert_close(batched[i], plain, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(batched[0], batched[1])  # instances really differ
    hf64, x64, z64 = hf.double(), x.double(), z.double()  # float64: equal to rounding
    batched = hf64(x64, z64)
    for i in range(b):
        torch.testing.assert_close(batched[i], hf64(x64[i:i + 1], z64[i:i + 1])[0], rtol=1e-10, atol=1e-10)


def test_shared_coordinates_broadcast_over_instances():
    hf = HyperField(siren(), 4, HyperConfig(hidden=(8,)))
    x, z = torch.rand(30, 2), torch.rand(3, 4)
    torch.testing.assert_close(hf(x, z), hf(x.expand(3, -1, -1), z))


def test_mip_encoding_has_constant_norm():
    gamma = torch.rand(1000, 7)
    gamma[:10] = 0.0
    gamma[10:20] = 1.0
    norms = mip_encode(gamma).norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, math.sqrt(7)))


def test_theta_equals_theta0_when_head_is_zeroed():
    hf = HyperField(siren(), 6, HyperConfig(mode="full", mip=True, hidden=(32,)))
    theta0 = {k: v.detach().clone() for k, v in hf.hyper.initial_outputs().items()}
    with torch.no_grad():
        hf.hyper.head.weight.zero_()
    params = hf.params(torch.rand(3, 6))
    assert set(params) == set(hf.target_shapes())
    for name, value in params.items():
        torch.testing.assert_close(value, theta0[name].expand_as(value))
    # theta_0 is an independent draw of the target's own (SIREN) initialisation: its bounds hold
    w0 = theta0["net.layers.0.weight"]
    assert w0.abs().max() <= 1 / 2 and w0.std() > 0.1  # first layer U(-1/in, 1/in), in = 2
    w1 = theta0["net.layers.1.weight"]
    assert w1.abs().max() <= math.sqrt(6 / 16) / 30 + 1e-7
    assert not torch.equal(w1, hf.field.net.layers[1].weight)  # independent of the field's own draw


def test_mip_head_starts_small_relative_to_each_target():
    hf = HyperField(siren(), 6, HyperConfig(mode="full", mip=True, hidden=(64, 64)))
    z = torch.rand(8, 6)
    theta0 = hf.hyper.initial_outputs()
    for name, value in hf.params(z).items():
        delta = (value - theta0[name]).std()
        assert delta < 0.25 * theta0[name].std(), name


def test_siren_paper_init_head_is_kaiming_over_100():
    hf = HyperField(siren(), 6, HyperConfig(mode="full", mip=False, init="siren", hidden=(256,)))
    std = hf.hyper.head.weight.std().item()
    assert abs(std - math.sqrt(2 / 256) / 100) < 0.1 * std
    bias = hf.hyper.initial_outputs()["net.layers.0.weight"]
    assert bias.abs().max() <= 1 / 2  # U(-1/in, 1/in) for the target's first layer (in = 2)


def test_film_and_lowrank_start_at_the_fields_own_function():
    field = siren()
    x = torch.rand(2, 20, 2) * 2 - 1
    expected = field(x)
    for mode in ("film", "shift"):
        hf = HyperField(siren(), 4, HyperConfig(mode=mode, mip=True, hidden=(8,)))
        with torch.no_grad():
            hf.hyper.head.weight.zero_()
        torch.testing.assert_close(hf(x, torch.rand(2, 4)), expected)
    hf = HyperField(siren(), 4, HyperConfig(mode="lowrank", hidden=(8,), rank=2))
    with torch.no_grad():
        hf.hyper.head.weight.zero_()
    torch.testing.assert_close(hf(x, torch.rand(2, 4)), expected)  # U = 0 at the start


def test_gradients_reach_latents_and_hypernetwork():
    hf = HyperField(siren(), 8, HyperConfig(hidden=(16,)))
    latents = AutoDecoder(5, 8, bounded=True)
    idx = torch.tensor([0, 3])
    y = hf(torch.rand(2, 10, 2), latents(idx))
    y.square().mean().backward()
    assert latents.latents.grad[idx].abs().sum() > 0
    assert latents.latents.grad[[1, 2, 4]].abs().sum() == 0
    for name, p in hf.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    # full mode never uses the field's own copies of generated parameters: they are frozen
    assert not hf.field.net.layers[0].weight.requires_grad


def test_target_selection_by_pattern_and_depth():
    f = siren()
    assert list(select_targets(f, ["net.layers.2.*"])) == ["net.layers.2.weight", "net.layers.2.bias"]
    assert list(select_targets(f, "all", last_k=2)) == ["net.layers.1.weight", "net.layers.1.bias",
                                                         "net.layers.2.weight", "net.layers.2.bias"]
    with pytest.raises(ValueError, match="matches no parameter"):
        select_targets(f, ["decoder.*"])
    with pytest.raises(ValueError, match="encoding tables stay shared"):
        select_targets(small_hash(), ["grid.params"])


def test_hash_field_generates_its_mlp_and_shares_its_table():
    hf = HyperField(small_hash(), 4, HyperConfig(hidden=(16,), targets=("net.*",)))
    assert "grid.params" not in hf.generated_shapes()
    x, z = torch.rand(3, 40, 2) * 2 - 1, torch.rand(3, 4)
    y = hf(x, z)
    for i in range(3):
        torch.testing.assert_close(y[i], hf(x[i:i + 1], z[i:i + 1])[0], rtol=1e-5, atol=1e-5)


def test_rebuild_from_config_gives_the_same_function():
    hf = HyperField(siren(), 4, HyperConfig(mode="lowrank", hidden=(8,), targets=("net.layers.1.*",), rank=2))
    again = build_hyper_field(hf.config())
    again.load_state_dict(hf.state_dict())
    x, z = torch.rand(2, 10, 2), torch.rand(2, 4)
    torch.testing.assert_close(again(x, z), hf(x, z))


def test_chunked_head_is_smaller_than_a_full_head():
    big = SirenField(2, 3, SirenConfig(hidden=(64, 64)))
    full = HyperField(big, 4, HyperConfig(hidden=(64,)))
    chunked = HyperField(big, 4, HyperConfig(hidden=(64,), chunk_size=64))
    count = lambda m: sum(p.numel() for p in m.hyper.parameters())  # noqa: E731
    assert count(chunked) < count(full) / 4


def test_conditioning_sources():
    conv = ConvEncoder(3, 16, width=8)
    assert conv(torch.rand(2, 3, 40, 30)).shape == (2, 16)
    enc = SetEncoder(2, 3, 16, width=32)
    coords, values = torch.rand(2, 50, 2), torch.rand(2, 50, 3)
    z = enc(coords, values)
    perm = torch.randperm(50)
    torch.testing.assert_close(enc(coords[:, perm], values[:, perm]), z, rtol=1e-5, atol=1e-6)  # order-free
    assert enc(coords[:, :7], values[:, :7]).shape == (2, 16)  # any number of observations
    bounded = ConvEncoder(3, 4, width=8, bounded=True)(torch.rand(3, 3, 16, 16))
    assert bounded.min() >= 0 and bounded.max() <= 1
    ad = AutoDecoder(10, 4, bounded=True)
    assert ad.latents.min() >= 0 and ad.latents.max() <= 1  # MIP's gammas start in [0, 1]
    assert ad.penalty(torch.arange(10)) > 0
