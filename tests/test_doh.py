"""D'OH (inr.hyper.doh): the counter-based projections are the same everywhere, the generated
weights have the target's init statistics, and the blocked product equals the dense one."""
import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from inr.fields import FourierConfig, FourierField, SirenConfig, SirenField
from inr.hyper import DOHConfig, DOHField
from inr.hyper.doh import SignProjection, init_std, philox_bytes, philox_uniform


def test_philox_stream_matches_hard_coded_values():
    # numpy's Philox4x64 raw stream is stable across platforms and versions; these pin it
    assert philox_bytes(7, 3, 0, 8).tolist() == [242, 197, 44, 134, 177, 199, 108, 123]
    assert philox_bytes(7, 3, 1000, 4).tolist() == [235, 132, 13, 181]
    assert philox_uniform(1, 1, 3).tolist() == [0.2355194091796875, -0.5726165771484375, -0.7883148193359375]


def test_philox_random_access_equals_the_full_stream():
    full = philox_bytes(11, 5, 0, 500)
    for start, n in ((0, 1), (3, 40), (31, 33), (64, 100), (449, 51)):
        assert np.array_equal(philox_bytes(11, 5, start, n), full[start:start + n])


def _digest(doh: DOHField) -> str:
    q = torch.arange(doh.cfg.latent_dim) % 17 - 8
    params = doh.exact_params(q, 0.01, [1.5] * len(doh.targets))
    return hashlib.sha256(b"".join(p.numpy().tobytes() for p in params.values())).hexdigest()


SCRIPT = """
import hashlib, torch
from inr.fields import SirenField, SirenConfig
from inr.hyper import DOHField, DOHConfig
doh = DOHField(SirenField(2, 3, SirenConfig(hidden=(32, 32))), DOHConfig(300, seed=5, offset=0.3), dense_bytes=0)
q = torch.arange(300) % 17 - 8
params = doh.exact_params(q, 0.01, [1.5] * len(doh.targets))
print(hashlib.sha256(b"".join(p.numpy().tobytes() for p in params.values())).hexdigest())
"""


def test_generated_weights_are_bitwise_identical_in_a_second_process():
    doh = DOHField(SirenField(2, 3, SirenConfig(hidden=(32, 32))), DOHConfig(300, seed=5, offset=0.3))
    other = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == _digest(doh)


@pytest.mark.parametrize("make", [lambda: SirenField(2, 3, SirenConfig(hidden=(96, 96, 96))),
                                  lambda: FourierField(2, 3, FourierConfig(hidden=(96, 96), n_features=48))])
@pytest.mark.parametrize("offset", [0.0, 0.6])
def test_generated_weights_have_the_targets_init_statistics(make, offset):
    field = make()
    doh = DOHField(field, DOHConfig(latent_dim=1024, seed=1, offset=offset), generator=torch.Generator().manual_seed(0))
    own = dict(field.named_parameters())
    for name, value in doh.params().items():
        t = doh.targets[name]
        assert init_std(t) > 0
        if t.numel >= 2000:  # weight matrices: against the field's own initialisation
            assert value.std().item() == pytest.approx(own[name].std().item(), rel=0.1), name
        assert value.mean().abs().item() < 0.2 * init_std(t) + 3 * init_std(t) / t.numel ** 0.5, name


def test_blocked_product_and_gradient_equal_the_dense_ones():
    field = SirenField(2, 1, SirenConfig(hidden=(40, 40)))
    dense = DOHField(field, DOHConfig(latent_dim=77, seed=2))
    blocked = DOHField(SirenField(2, 1, SirenConfig(hidden=(40, 40))), DOHConfig(latent_dim=77, seed=2), dense_bytes=0)
    assert dense.projection.dense is not None and blocked.projection.dense is None
    z = torch.randn(77, requires_grad=True)
    a, b = dense.params(z), blocked.params(z)
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-5, atol=1e-6)
    ga = torch.autograd.grad(sum((v.sin() * v).sum() for v in a.values()), z)[0]
    gb = torch.autograd.grad(sum((v.sin() * v).sum() for v in b.values()), z)[0]
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-5)


def test_exact_parameters_match_the_float_path():
    doh = DOHField(SirenField(2, 3, SirenConfig(hidden=(24, 24))), DOHConfig(50, seed=9, offset=0.5))
    q = torch.randint(-100, 100, (50,))
    exact = doh.exact_params(q, 0.02)
    approx = doh.params(q.float() * 0.02)
    for n in exact:
        torch.testing.assert_close(exact[n], approx[n], rtol=1e-5, atol=1e-6)


def test_only_the_latent_and_scales_train_and_fourier_features_come_from_the_seed():
    a = DOHField(FourierField(2, 3, FourierConfig(hidden=(16,), n_features=8)), DOHConfig(20, seed=4, learn_scales=True))
    b = DOHField(FourierField(2, 3, FourierConfig(hidden=(16,), n_features=8)), DOHConfig(20, seed=4))
    assert torch.equal(a.field.encoding.B, b.field.encoding.B)
    trained = {n for n, p in a.named_parameters() if p.requires_grad}
    assert trained == {"z", "log_scales"}
    y = a(torch.rand(10, 2))
    y.sum().backward()
    assert a.z.grad.abs().sum() > 0 and a.log_scales.grad.abs().sum() > 0


def _reference(proj: SignProjection, q: torch.Tensor) -> torch.Tensor:
    """P q from the materialised matrix in int64 (exact, the plain definition)."""
    return proj.matrix().long() @ q


@pytest.mark.parametrize("k", [5, 16, 77, 300])
def test_exact_product_equals_the_int64_matrix_product(k):
    proj = SignProjection(3, [0, 4, 8], [50, 7, 129], k, dense_bytes=0, keep=False)
    assert proj.packed is None
    gen = torch.Generator().manual_seed(k)
    for bits in (4, 8, 16):
        n = 2 ** (bits - 1) - 1
        q = torch.randint(-n, n + 1, (k,), generator=gen)
        assert torch.equal(proj.apply_exact(q), _reference(proj, q))
    kept = SignProjection(3, [0, 4, 8], [50, 7, 129], k, dense_bytes=0)
    assert kept.packed is not None and np.array_equal(kept.words(0, kept.groups), proj.words(0, proj.groups))


def test_exact_product_near_the_int32_bound():
    # sum |q| just under 2^31 sums in int32, just over it in int64: both must equal the reference
    proj = SignProjection(9, [0, 4], [40, 3], 64, dense_bytes=0)
    for total in (2**31 - 64, 2**31, 2**33):
        signs = torch.where(torch.arange(64) % 3 == 0, -1, 1)
        q = signs * (total // 64)
        assert torch.equal(proj.apply_exact(q), _reference(proj, q)), total
    q = torch.full((64,), (2**31 - 1) // 64)  # every sign +1 somewhere: partial sums reach the bound
    assert torch.equal(proj.apply_exact(q), _reference(proj, q))


def test_threaded_products_do_not_depend_on_the_thread_count():
    proj = SignProjection(2, [0, 4], [300, 20], 100, dense_bytes=0)
    z, g = torch.randn(100), torch.randn(320)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = proj.forward_blocks(z), proj.transpose_blocks(g)
        torch.set_num_threads(2)
        two = proj.forward_blocks(z), proj.transpose_blocks(g)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    torch.testing.assert_close(one[0], proj.matrix() @ z, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(one[1], proj.matrix().T @ g, rtol=1e-5, atol=1e-4)
