"""The dynamic hypernetwork (inr.hyper.dynamic): stop-gradient, batched = per-scene, static variant."""
import pytest
import torch

from inr.hyper.dynamic import DynamicHyperConfig, DynamicHyperNetwork, mlp_layer_targets, mlp_probe
from inr.nn import MLP, MLPSpec

D_TOKEN = 12


def _setup(dynamic=True, mip=False):
    torch.manual_seed(0)
    mlp = MLP(MLPSpec(3, (16, 16), 4))
    cfg = DynamicHyperConfig(d_model=16, layers=1, heads=2, head_hidden=(16,), dynamic=dynamic, mip=mip)
    hyper = DynamicHyperNetwork(D_TOKEN, mlp_layer_targets(mlp, "net."), cfg,
                                base={f"net.{k}": v for k, v in mlp.params().items()})
    with torch.no_grad():  # leave the "predicted = 1" start so that instances differ
        for head in hyper.heads:
            head.out.weight.normal_(0, 0.3)
    return mlp, hyper


def _forward(mlp, hyper, tokens, mask, x):
    cond = hyper.condition(tokens, mask)
    params = hyper.generate(cond, mlp_probe(x, mlp.spec, "net."))
    return mlp(x, params, prefix="net."), params


def test_starts_at_the_base_weights():
    torch.manual_seed(0)
    mlp = MLP(MLPSpec(3, (16,), 2))
    hyper = DynamicHyperNetwork(D_TOKEN, mlp_layer_targets(mlp, ""), DynamicHyperConfig(d_model=8, heads=2),
                                base=mlp.params())
    x = torch.randn(2, 50, 3)
    params = hyper.generate(hyper.condition(torch.randn(2, 5, D_TOKEN)), mlp_probe(x, mlp.spec, ""))
    for name, p in mlp.params().items():
        torch.testing.assert_close(params[name], p.detach().expand_as(params[name]), atol=1e-2, rtol=1e-2)


def test_stop_gradient_no_gradient_through_the_mean_activation():
    mlp, hyper = _setup()
    x = torch.randn(2, 40, 3, requires_grad=True)
    tokens = torch.randn(2, 6, D_TOKEN)
    params = hyper.generate(hyper.condition(tokens), mlp_probe(x, mlp.spec, "net."))
    # the weights depend on x only through the stop-gradient activations: no path back to x
    total = sum(p.sum() for p in params.values())
    assert not any(p.grad_fn is None for p in params.values())
    (grad,) = torch.autograd.grad(total, x, allow_unused=True, retain_graph=True)
    assert grad is None
    # and the gradient reaching the heads equals the one with the activations fed in as constants
    hyper.zero_grad()
    mlp(x, params, prefix="net.").square().mean().backward()
    dynamic_grads = [p.grad.clone() for p in hyper.heads.parameters()]
    hyper.zero_grad()
    probe = mlp_probe(x.detach(), mlp.spec, "net.")
    fixed, cond = {}, hyper.condition(tokens)
    with torch.no_grad():
        acts = []
        for k, t in enumerate(hyper.targets):
            acts.append(probe(fixed, k).clone())
            fixed[t.name + ".weight"], fixed[t.name + ".bias"] = hyper.layer(k, cond, acts[-1])
    again = {}
    for k, t in enumerate(hyper.targets):
        again[t.name + ".weight"], again[t.name + ".bias"] = hyper.layer(k, cond, acts[k])
    mlp(x.detach(), again, prefix="net.").square().mean().backward()
    for a, b in zip(dynamic_grads, (p.grad for p in hyper.heads.parameters())):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dynamic,mip", [(True, False), (False, False), (True, True)])
def test_batched_equals_per_scene_loop(dynamic, mip):
    mlp, hyper = _setup(dynamic, mip)
    tokens = torch.randn(3, 7, D_TOKEN)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False  # padded captions must not see their padding
    mask[2, 2:] = False
    x = torch.randn(3, 64, 3)
    y, _ = _forward(mlp, hyper, tokens, mask, x)
    for i in range(3):
        n = int(mask[i].sum())
        yi, _ = _forward(mlp, hyper, tokens[i:i + 1, :n], None, x[i:i + 1])
        torch.testing.assert_close(y[i:i + 1], yi, atol=1e-5, rtol=1e-4)


def test_static_variant_ignores_the_activations():
    mlp, hyper = _setup(dynamic=False)
    cond = hyper.condition(torch.randn(2, 5, D_TOKEN))
    a = hyper.generate(cond)  # no probe needed
    b = hyper.generate(cond, mlp_probe(torch.randn(2, 9, 3) * 5, mlp.spec, "net."))
    for name in a:
        torch.testing.assert_close(a[name], b[name])
    mlp_d, dyn = _setup(dynamic=True)
    with pytest.raises(ValueError, match="probe"):
        dyn.generate(dyn.condition(torch.randn(1, 3, D_TOKEN)))


def test_dynamic_weights_depend_on_the_points():
    mlp, hyper = _setup(dynamic=True)
    cond = hyper.condition(torch.randn(1, 5, D_TOKEN))
    a = hyper.generate(cond, mlp_probe(torch.randn(1, 30, 3), mlp.spec, "net."))
    b = hyper.generate(cond, mlp_probe(torch.randn(1, 30, 3) + 2, mlp.spec, "net."))
    assert not torch.allclose(a["net.layers.0.weight"], b["net.layers.0.weight"])


def test_fits_two_conditionings():
    """Two token sequences -> two different target functions, learned through the generated weights."""
    mlp, hyper = _setup()
    tokens = torch.randn(2, 4, D_TOKEN)
    x = torch.rand(2, 128, 3) * 2 - 1
    target = torch.stack([torch.sin(3 * x[0, :, :1]).expand(-1, 4), torch.cos(2 * x[1, :, 1:2]).expand(-1, 4)])
    opt = torch.optim.Adam(hyper.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        opt.zero_grad()
        y, _ = _forward(mlp, hyper, tokens, None, x)
        loss = (y - target).square().mean()
        first = first if first is not None else float(loss.detach())
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * first
