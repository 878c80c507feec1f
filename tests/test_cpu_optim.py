"""The C++ CPU Adam (inr.train.optim.CPUAdam) against torch.optim.Adam."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from inr.backends import Backend
from inr.train.optim import CPUAdam, make_adam

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def ext():
    from kernels.cpu_loader import OPTIM, load_cpu_optim

    mod = load_cpu_optim()
    if mod is None:
        pytest.skip(f"C++ CPU optimizer kernels unavailable: {OPTIM.last_error()}")
    return mod


def _params(seed, shapes):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) for s in shapes]


def _run(make, init, grads_per_step, lrs):
    ps = [torch.nn.Parameter(t.clone()) for t in init]
    opt = make([{"params": ps, "lr": lrs[0]}])
    for lr, grads in zip(lrs, grads_per_step):
        opt.param_groups[0]["lr"] = lr
        for p, g in zip(ps, grads):
            p.grad = None if g is None else g.clone()
        opt.step()
    return ps, opt


SHAPES = [(7, 5), (3,), (1001, 2), (64, 64), (1,)]


@pytest.mark.parametrize("betas,eps", [((0.9, 0.999), 1e-8), ((0.9, 0.99), 1e-15)])
def test_dense_matches_torch_adam(betas, eps):
    seed = int.from_bytes(os.urandom(4), "little")
    init = _params(seed, SHAPES)
    g = torch.Generator().manual_seed(seed + 1)
    steps = [[torch.randn(s, generator=g) for s in SHAPES] for _ in range(6)]
    steps[2][1] = None  # a parameter without a gradient in one step keeps its state
    lrs = [1e-2, 8e-3, 6e-3, 5e-3, 4e-3, 3e-3]
    ours, opt = _run(lambda gr: CPUAdam(gr, betas=betas, eps=eps), init, steps, lrs)
    ref, ropt = _run(lambda gr: torch.optim.Adam(gr, betas=betas, eps=eps), init, steps, lrs)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # torch forms m as m + (1 - b1)(g - m) (lerp), we as b1 m + (1 - b1) g: where the terms cancel,
    # the two differ by ulps of the terms (~1e-7 at |g| ~ 1), not of the small result
    for a, b in zip(ours, ref):
        for k in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(opt.state[a][k], ropt.state[b][k], rtol=1e-5, atol=1e-6)


def test_lazy_tables_every_row_touched_equals_dense():
    seed = int.from_bytes(os.urandom(4), "little")
    init = _params(seed, [(513, 2), (9, 4)])
    g = torch.Generator().manual_seed(seed + 1)
    steps = [[torch.randn(513, 2, generator=g), torch.randn(9, 4, generator=g)] for _ in range(5)]
    lrs = [1e-2] * 5
    holder = {}

    def make_lazy(groups):
        holder["opt"] = CPUAdam(groups, betas=(0.9, 0.99), eps=1e-15, lazy_tables=[groups[0]["params"][0]])
        return holder["opt"]

    ours, _ = _run(make_lazy, init, steps, lrs)
    ref, _ = _run(lambda gr: torch.optim.Adam(gr, betas=(0.9, 0.99), eps=1e-15), init, steps, lrs)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_lazy_tables_untouched_rows():
    """Rows with a zero gradient are left alone (parameter and moments); when touched again their
    moments are what dense Adam holds (closed-form decay), their parameter lacks dense Adam's drift."""
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(6, 2, generator=g)]
    grads = [torch.randn(6, 2, generator=g) for _ in range(5)]
    for t in (1, 2, 3):
        grads[t][2:4] = 0.0  # rows 2 and 3 untouched in steps 2-4, touched again in step 5
    lr = 1e-2
    p = torch.nn.Parameter(init[0].clone())
    opt = CPUAdam([{"params": [p], "lr": lr}], betas=(0.9, 0.99), eps=1e-15, lazy_tables=[p])
    ref = torch.nn.Parameter(init[0].clone())
    ropt = torch.optim.Adam([ref], lr=lr, betas=(0.9, 0.99), eps=1e-15)
    after_first = None
    for t, gr in enumerate(grads):
        p.grad, ref.grad = gr.clone(), gr.clone()
        opt.step()
        ropt.step()
        if t == 0:
            after_first = p.detach().clone()
        if t in (1, 2, 3):  # untouched rows do not move
            assert torch.equal(p[2:4], after_first[2:4])
    st, rst = opt.state[p], ropt.state[ref]
    assert st["row_step"].tolist() == [5] * 6
    torch.testing.assert_close(st["exp_avg"], rst["exp_avg"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(st["exp_avg_sq"], rst["exp_avg_sq"], rtol=1e-5, atol=1e-9)
    # touched rows follow dense Adam; the skipped rows differ by dense Adam's drift only
    torch.testing.assert_close(p[[0, 1, 4, 5]], ref[[0, 1, 4, 5]], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(p[2:4], ref[2:4], atol=1e-4)


def test_one_and_two_threads_agree():
    init = _params(3, [(4099, 2), (33, 17)])
    g = torch.Generator().manual_seed(4)
    steps = [[torch.randn(4099, 2, generator=g), torch.randn(33, 17, generator=g)] for _ in range(3)]
    out = []
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out.append(_run(lambda gr: CPUAdam(gr), init, steps, [1e-2] * 3)[0])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*out):
        assert torch.equal(a, b)


def test_checkpoint_round_trip_with_torch_adam():
    init = _params(5, [(10, 2)])
    g = torch.Generator().manual_seed(6)
    steps = [[torch.randn(10, 2, generator=g)] for _ in range(4)]
    ps, opt = _run(lambda gr: CPUAdam(gr), init, steps[:2], [1e-2] * 2)
    ref = torch.optim.Adam([{"params": ps, "lr": 1e-2}])
    ref.load_state_dict(opt.state_dict())  # same state names: torch Adam resumes our run
    back = CPUAdam([{"params": ps, "lr": 1e-2}])
    back.load_state_dict(ref.state_dict())
    assert int(back.state[ps[0]]["step"]) == 2


def test_make_adam_choice_and_fallback():
    p = torch.nn.Parameter(torch.ones(3))
    assert isinstance(make_adam([{"params": [p], "lr": 0.1}], backend=Backend("auto")), CPUAdam)
    assert isinstance(make_adam([{"params": [p], "lr": 0.1}], backend=Backend("cuda")), CPUAdam)
    assert type(make_adam([{"params": [p], "lr": 0.1}], backend=Backend("torch"))) is torch.optim.Adam
    code = ("import torch, warnings\nwarnings.simplefilter('ignore')\n"
            "from inr.backends import Backend\n"
            "from inr.train.optim import make_adam\n"
            "p = torch.nn.Parameter(torch.ones(3))\n"
            "assert type(make_adam([{'params': [p], 'lr': 0.1}], backend=Backend('auto'))) is torch.optim.Adam\n")
    env = dict(os.environ, INR_DISABLE_CPU_KERNELS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                         check=False)
    assert res.returncode == 0, res.stderr


def test_unsupported_parameters_use_torch_step():
    """Float64 and non-contiguous gradients go through torch's functional Adam, same result."""
    init = [torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 6)]
    g = torch.Generator().manual_seed(7)
    steps = [[torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g).t()]
             for _ in range(3)]
    ours, opt = _run(lambda gr: CPUAdam(gr), init, steps, [1e-2] * 3)
    ref, _ = _run(lambda gr: torch.optim.Adam(gr), init, steps, [1e-2] * 3)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)
    assert int(opt.state[ours[0]]["step"]) == 3
