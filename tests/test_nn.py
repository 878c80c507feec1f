"""The batched MLP op and the initialisers."""
import math

import pytest
import torch

from inr.nn import MLP, MLPSpec, batched_linear, init_mlp_params, mlp_forward


def test_batched_linear_matches_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 7, 3, generator=g)
    w = torch.randn(4, 5, 3, generator=g)
    b = torch.randn(4, 5, generator=g)
    y = batched_linear(x, w, b)
    for i in range(4):
        torch.testing.assert_close(y[i], x[i] @ w[i].T + b[i])
    # shared weights broadcast over instances; shared coordinates broadcast over weights
    torch.testing.assert_close(batched_linear(x, w[0], b[0]), x @ w[0].T + b[0])
    torch.testing.assert_close(batched_linear(x[0], w, b)[2], x[0] @ w[2].T + b[2])


def test_batched_linear_hand_example():
    x = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])             # B=2, N=1
    w = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])             # instance 0 picks x, 1 picks y
    b = torch.tensor([[10.0], [20.0]])
    assert batched_linear(x, w, b).tolist() == [[[11.0]], [[24.0]]]


@pytest.mark.parametrize("activation", ["relu", "sine", "none"])
@pytest.mark.parametrize("bias", [True, False])
def test_mlp_per_instance_equals_loop(activation, bias):
    spec = MLPSpec(3, (16, 16), 2, activation=activation, output_activation="sigmoid", w0_first=20, w0_hidden=5, bias=bias)
    B = 5
    params = {k: torch.randn(B, *s, dtype=torch.float64) * 0.3 for k, s in spec.param_shapes().items()}
    x = torch.randn(B, 11, 3, dtype=torch.float64)
    y = mlp_forward(x, params, spec)
    assert y.shape == (B, 11, 2)
    for i in range(B):
        yi = mlp_forward(x[i], {k: v[i] for k, v in params.items()}, spec)
        torch.testing.assert_close(y[i], yi)


def test_mlp_mixed_shared_and_batched_and_grad():
    spec = MLPSpec(2, (8,), 1, activation="sine")
    params = {k: v.double().requires_grad_() for k, v in init_mlp_params(spec).items()}
    batched = dict(params)
    batched["layers.1.weight"] = params["layers.1.weight"].unsqueeze(0).repeat(3, 1, 1)
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(mlp_forward(x, batched, spec), mlp_forward(x, params, spec))
    assert torch.autograd.gradcheck(lambda x_, w: mlp_forward(x_, {**params, "layers.0.weight": w}, spec),
                                    (x, params["layers.0.weight"]))
    assert torch.autograd.gradgradcheck(lambda x_: mlp_forward(x_, params, spec), (x,))


def test_sine_layer_applies_w0_to_preactivation():
    spec = MLPSpec(1, (1,), 1, activation="sine", w0_first=30.0)
    params = {"layers.0.weight": torch.tensor([[0.01]]), "layers.0.bias": torch.tensor([0.0]),
              "layers.1.weight": torch.tensor([[1.0]]), "layers.1.bias": torch.tensor([0.0])}
    y = mlp_forward(torch.tensor([[1.0]]), params, spec)
    assert math.isclose(y.item(), math.sin(0.3), rel_tol=1e-6)


def test_siren_init_statistics():
    spec = MLPSpec(2, (256, 256, 256), 1, activation="sine", w0_first=30.0, w0_hidden=30.0)
    p = init_mlp_params(spec, "siren", generator=torch.Generator().manual_seed(0))
    first = p["layers.0.weight"]
    assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.49  # U(-1/n, 1/n), n = 2
    for i in (1, 2, 3):
        w = p[f"layers.{i}.weight"]
        bound = math.sqrt(6 / 256) / 30
        assert w.abs().max() <= bound and w.abs().max() > 0.98 * bound
        # uniform on [-a, a] has std a / sqrt(3) (the 1x256 output layer is too small to check)
        assert i == 3 or abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound
    # SIREN's key property: with this init, hidden pre-activations are ~N(0, 1) for uniform inputs
    x = torch.rand(20000, 2) * 2 - 1
    h = torch.sin(30 * (x @ p["layers.0.weight"].T + p["layers.0.bias"]))
    pre = (h @ p["layers.1.weight"].T) * 30
    assert 0.8 < pre.std().item() < 1.2


def test_he_init_statistics():
    spec = MLPSpec(64, (512, 512), 1, activation="relu")
    p = init_mlp_params(spec, "he", generator=torch.Generator().manual_seed(0))
    assert abs(p["layers.1.weight"].std().item() - math.sqrt(2 / 512)) < 0.02 * math.sqrt(2 / 512)
    assert torch.all(p["layers.0.bias"] == 0)


def test_mlp_module_override_and_spec_validation():
    spec = MLPSpec(2, (4,), 3, activation="relu")
    m = MLP(spec)
    x = torch.randn(2, 5, 2)
    w = torch.zeros(2, 3, 4)
    b = torch.arange(6.0).view(2, 3)
    y = m(x, {"net.layers.1.weight": w, "net.layers.1.bias": b}, prefix="net.")
    torch.testing.assert_close(y, b[:, None, :].expand(2, 5, 3))
    with pytest.raises(ValueError):
        MLPSpec(2, (4,), 3, activation="tanh")
    assert spec.n_params() == 2 * 4 + 4 + 4 * 3 + 3
