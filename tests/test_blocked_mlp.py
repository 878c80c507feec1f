"""The blocked CPU MLP against the reference op: values, gradients, double backward."""
import pytest
import torch

from inr.backends.torch_blocked_mlp import blocked_mlp
from inr.nn import MLPSpec, mlp_forward


def _params(spec, batch=None, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, s in spec.param_shapes().items():
        shape = (batch, *s) if batch else s
        out[k] = (torch.randn(shape, generator=g, dtype=dtype) * 0.4).requires_grad_()
    return out


CASES = [
    ("relu", "none", True, None, 2), ("sine", "sigmoid", True, 3, 3), ("none", "exp", False, None, 3),
    ("relu", "relu", False, 4, 2), ("sine", "none", True, None, 2),
]


@pytest.mark.parametrize("act,out_act,bias,batch,x_dims", CASES)
def test_blocked_matches_reference(act, out_act, bias, batch, x_dims):
    spec = MLPSpec(5, (16, 8), 3, activation=act, output_activation=out_act, w0_first=3.0, w0_hidden=2.0, bias=bias)
    params = _params(spec, batch)
    B = batch or 2
    shape = (B, 37, 5) if x_dims == 3 else (37, 5)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ref = mlp_forward(x, params, spec)
    got = blocked_mlp(x, params, spec, chunk=8)  # 37 points: four full blocks and a ragged one
    torch.testing.assert_close(got, ref)
    gy = torch.randn_like(ref)
    inputs = [x, *params.values()]
    g_ref = torch.autograd.grad(ref, inputs, gy)
    g_got = torch.autograd.grad(got, inputs, gy)
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b)


def test_blocked_double_backward_matches_reference():
    """An eikonal-style loss: |dy/dx|^2 back-propagated into the weights."""
    spec = MLPSpec(3, (16, 16), 1, activation="sine", w0_first=3.0, w0_hidden=1.0)
    params = _params(spec)
    x = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)

    def eikonal(op):
        y = op(x, params, spec)
        (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        loss = (gx.norm(dim=-1) - 1).pow(2).mean()
        return torch.autograd.grad(loss, [x, *params.values()], allow_unused=True, materialize_grads=True)

    for a, b in zip(eikonal(lambda *a: blocked_mlp(*a, chunk=6)), eikonal(mlp_forward)):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradgradcheck(lambda x_: blocked_mlp(x_, params, spec, chunk=7), (x,))


def test_cpu_dispatch_of_large_batches_agrees():
    from inr.backends import mlp_op

    spec = MLPSpec(4, (32,), 2)
    params = {k: v.detach().float() for k, v in _params(spec).items()}
    x = torch.randn(10000, 4)
    torch.testing.assert_close(mlp_op(x, params, spec), mlp_forward(x, params, spec), rtol=1e-5, atol=1e-5)
