"""Rays, volume rendering, the occupancy grid and marching, against hand-computed answers."""
import math

import pytest
import torch

from inr.fields.nerf import NerfField, NerfFieldConfig, trunc_exp
from inr.render import Cameras, OccupancyGrid, composite, march, orbit_poses, ray_aabb, step_schedule
from inr.render.radiance import MarchConfig, RadianceRenderer


def test_rays_match_hand_computed_pinhole():
    # Camera at (0, 0, 5) looking down -z (identity rotation), 4x2 image, f = 2, principal point at the centre.
    c2w = torch.eye(4)[None].clone()
    c2w[0, 2, 3] = 5.0
    cams = Cameras(c2w, torch.tensor([2.0]), torch.tensor([2.0]), torch.tensor([2.0]), torch.tensor([1.0]), 4, 2)
    origins, dirs = cams.view_rays(0)
    assert origins.shape == (8, 3) and torch.equal(origins, torch.tensor([[0.0, 0.0, 5.0]]).expand(8, 3))
    # Pixel (row 0, col 0): centre (0.5, 0.5) -> x = (0.5 - 2) / 2 = -0.75, y = -(0.5 - 1) / 2 = 0.25, z = -1.
    expected = torch.tensor([-0.75, 0.25, -1.0])
    assert torch.allclose(dirs[0], expected / expected.norm())
    # Pixel (row 1, col 3): x = (3.5 - 2) / 2 = 0.75, y = -(1.5 - 1) / 2 = -0.25.
    expected = torch.tensor([0.75, -0.25, -1.0])
    assert torch.allclose(dirs[7], expected / expected.norm())
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(8))


def test_rays_follow_the_camera_rotation():
    # A camera rotated 90 degrees about y looks down -x.
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    cams = Cameras(c2w[None], *(torch.tensor([1.0]) for _ in range(4)), 2, 2)
    _, d = cams.rays(torch.tensor([0]), torch.tensor([1.0]), torch.tensor([1.0]))  # the principal point
    assert torch.allclose(d, torch.tensor([[-1.0, 0.0, 0.0]]), atol=1e-6)


def test_ray_aabb_entry_exit_and_miss():
    aabb = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    o = torch.tensor([[0.0, 0.0, -3.0], [0.0, 0.0, 0.0], [0.0, 5.0, -3.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    near, far, hit = ray_aabb(o, d, aabb)
    assert hit.tolist() == [True, True, False]
    assert torch.allclose(near[:2], torch.tensor([2.0, 0.0])) and torch.allclose(far[:2], torch.tensor([4.0, 1.0]))


def test_orbit_poses_look_at_the_centre():
    poses = orbit_poses(8, 3.0, 20.0, center=(0.5, 0.0, 0.0))
    eye = poses[:, :3, 3]
    forward = -poses[:, :3, 2]  # cameras look down their -z
    to_center = torch.tensor([0.5, 0.0, 0.0]) - eye
    assert torch.allclose((eye - torch.tensor([0.5, 0.0, 0.0])).norm(dim=-1), torch.full((8,), 3.0), atol=1e-5)
    assert torch.allclose(forward, to_center / to_center.norm(dim=-1, keepdim=True), atol=1e-5)
    assert torch.allclose(torch.linalg.det(poses[:, :3, :3]), torch.ones(8), atol=1e-5)


@pytest.mark.parametrize("sigma", [0.3, 2.0, 25.0])
def test_constant_density_matches_the_closed_form(sigma):
    # One ray through a slab [a, b] of constant density and colour c, split into many samples:
    # opacity 1 - exp(-sigma L), colour c * opacity + bg * (1 - opacity), and
    # depth = int_a^b t sigma e^{-sigma (t - a)} dt.
    a, b, n = 1.0, 3.0, 4000
    t = torch.linspace(a, b, n + 1, dtype=torch.float64).float()
    ri = torch.zeros(n, dtype=torch.long)
    rgb = torch.tensor([0.2, 0.5, 0.9]).expand(n, 3)
    bg = torch.tensor([1.0, 0.0, 0.0])
    out = composite(rgb, torch.full((n,), sigma), t[:-1], t[1:], ri, 1, bg)
    opacity = 1 - math.exp(-sigma * (b - a))
    depth = (a - b * math.exp(-sigma * (b - a))) + (1 - math.exp(-sigma * (b - a))) / sigma
    assert out["opacity"].item() == pytest.approx(opacity, rel=1e-4)
    assert torch.allclose(out["rgb"][0], torch.tensor([0.2, 0.5, 0.9]) * opacity + bg * (1 - opacity), atol=1e-4)
    assert out["depth"].item() == pytest.approx(depth, rel=1e-3)


def test_packed_rendering_keeps_rays_apart():
    # Two rays of different densities packed together render as they would alone; a ray with no
    # samples is transparent.
    t0 = torch.tensor([0.0, 1.0, 0.0, 1.0, 2.0])
    t1 = torch.tensor([1.0, 2.0, 1.0, 2.0, 3.0])
    ri = torch.tensor([0, 0, 2, 2, 2])
    sig = torch.tensor([1.0, 1.0, 0.5, 0.5, 0.5])
    out = composite(torch.ones(5, 3), sig, t0, t1, ri, 3)
    assert out["opacity"][0].item() == pytest.approx(1 - math.exp(-2.0), rel=1e-6)
    assert out["opacity"][1].item() == 0.0
    assert out["opacity"][2].item() == pytest.approx(1 - math.exp(-1.5), rel=1e-6)


def test_volume_rendering_gradient_matches_finite_differences():
    torch.manual_seed(0)
    n = 12
    t = torch.sort(torch.rand(n + 1, dtype=torch.float64) * 4).values
    sig = torch.rand(n, dtype=torch.float64, requires_grad=True)
    rgb = torch.rand(n, 3, dtype=torch.float64, requires_grad=True)
    ri = torch.tensor([0] * 5 + [1] * 7)

    def f(s, c):
        return composite(c, s, t[:-1], t[1:], ri, 2)["rgb"].sum()

    assert torch.autograd.gradcheck(f, (sig, rgb))


def test_occupancy_grid_marks_a_box_and_skips_empty_space():
    aabb = torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])
    grid = OccupancyGrid(aabb, resolution=32)
    assert grid.occupied(torch.tensor([[1.0, 1.0, 1.0]])).item()  # never evaluated: occupied

    def box_density(p):  # a solid box [-0.5, 0.5]^3 of density 50 in empty space
        return ((p.abs() <= 0.5).all(-1)).float() * 50.0

    grid.update(box_density, step=0, step_size=0.01, fraction=1.0)
    inside = torch.tensor([[0.0, 0.0, 0.0], [0.4, -0.4, 0.3]])
    outside = torch.tensor([[1.2, 0.0, 0.0], [0.0, -1.0, 1.0], [3.0, 0.0, 0.0]])
    assert grid.occupied(inside).all() and not grid.occupied(outside).any()
    # About (1 / 3)^3 of the cells hold the box (plus a rim where the cells straddle its faces).
    assert 1 / 27 <= grid.occupancy() < 1.6 / 27
    # Marching a ray through the middle keeps only samples inside the box's cells.
    o, d = torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    near, far, _ = ray_aabb(o, d, aabb)
    ri, t0, t1 = march(grid, o, d, near, far, step_schedule(10.0, 0.01))
    z = -3.0 + (t0 + t1) / 2
    assert ri.numel() > 0 and z.min() > -0.6 and z.max() < 0.6
    assert (t1 - t0).max() <= 0.01 + 1e-6 and torch.all(t0[1:] >= t1[:-1] - 1e-6)


@pytest.mark.parametrize("case", ["grid+jitter", "grid+max_samples", "no grid", "cone schedule", "3 cascades"])
def test_cpu_march_kernel_equals_pytorch_march(case, monkeypatch):
    """The C++ march (backend auto on a CPU) returns exactly the PyTorch path's packed samples."""
    from inr.backends import Backend
    from kernels.cpu_loader import load_cpu_render

    if load_cpu_render() is None:
        pytest.skip("C++ CPU ray-marching extension unavailable")
    seed = int.from_bytes(__import__("os").urandom(4), "little")
    gen = torch.Generator().manual_seed(seed)
    cascades = 3 if case == "3 cascades" else 1
    grid = OccupancyGrid(torch.tensor([-1.5, -1.5, -1.2, 1.5, 1.0, 1.5]), resolution=24, cascades=cascades)
    grid.density = torch.rand(cascades, 24 ** 3, generator=gen) * 0.02  # about half the cells occupied
    grid.refresh()
    n = 513
    o = torch.randn(n, 3, generator=gen) * 0.3 + torch.tensor([0.0, 0.0, 4.0])
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen) * 0.4 + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    near = torch.rand(n, generator=gen) * 2 + 1
    far = near + torch.rand(n, generator=gen) * (5 if cascades == 1 else 12)  # out through the cascades
    far[:7] = near[:7] - 0.5  # empty rays
    schedule = step_schedule(16.0, 0.01, cone_angle=1 / 64 if case in ("cone schedule", "3 cascades") else 0.0)
    jitter = torch.rand(n, generator=gen) if case != "grid+max_samples" else None
    args = (None if case == "no grid" else grid, o, d, near, far, schedule, jitter,
            5 if case == "grid+max_samples" else None)
    with Backend("torch").active():
        ref = march(*args)
    calls = []
    import inr.render.occupancy as occ

    real = occ._march_cpu
    monkeypatch.setattr(occ, "_march_cpu", lambda *a: calls.append(real(*a)) or calls[-1])
    with Backend("auto").active():
        got = march(*args)
    assert calls and calls[0] is not None, "the C++ kernel did not run"
    assert ref[0].numel() > 0
    for a, b in zip(ref, got):
        assert a.dtype == b.dtype and torch.equal(a, b), f"seed {seed}"


def test_occupancy_decays_and_cascades_cover_a_larger_box():
    grid = OccupancyGrid(torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]), resolution=8, cascades=3)
    assert torch.allclose(grid.outer_aabb, torch.tensor([-4.0, -4.0, -4.0, 4.0, 4.0, 4.0]))
    grid.update(lambda p: torch.full(p.shape[:1], 10.0), step=0, step_size=0.01, fraction=1.0)
    assert grid.occupied(torch.tensor([[3.5, 3.5, 3.5]])).item()
    grid.update(lambda p: torch.zeros(p.shape[:1]), step=1, step_size=0.01, fraction=1.0)
    assert torch.allclose(grid.density, torch.full_like(grid.density, 0.1 * 0.95))  # max(decay * old, new)
    assert OccupancyGrid.cascades_for(1) == 1 and OccupancyGrid.cascades_for(16) == 5


def test_cone_schedule_grows_with_distance():
    # dt = clamp(t / 256, 0.01, 0.5): constant to t = 2.56, then geometric, then 0.5 from t = 128.
    s = step_schedule(200.0, 0.01, cone_angle=1 / 256, max_step=0.5)
    steps = s[1:] - s[:-1]
    assert steps[0].item() == pytest.approx(0.01, rel=1e-5) and steps[-1].item() == pytest.approx(0.5, rel=1e-5)
    mid = torch.searchsorted(s, torch.tensor([50.0])).item()
    assert steps[mid].item() == pytest.approx(s[mid].item() / 256, rel=1e-3)
    assert torch.all(steps[1:] >= steps[:-1] - 1e-5) and s[-1] >= 200.0


@pytest.mark.parametrize("prune_training", [False, True])
def test_training_and_rendering_paths_agree(prune_training):
    torch.manual_seed(0)
    field = NerfField(3, 4, NerfFieldConfig(grid={"n_levels": 4, "log2_hashmap_size": 10}))
    grid = OccupancyGrid(torch.tensor(field.cfg.aabb), resolution=16)
    renderer = RadianceRenderer(field, grid, MarchConfig(steps_per_diagonal=64, prune_training=prune_training))
    o = torch.tensor([[0.0, 0.0, 4.0], [0.3, 0.1, 4.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    out = renderer.render(o, d, torch.ones(3))
    out["rgb"].sum().backward()
    assert field.encoding.params.grad is not None and out["n_samples"] > 0
    with torch.no_grad():  # rendering (early stop, features reused) gives the same colours
        again = renderer.render(o, d, torch.ones(3))
    assert torch.allclose(again["rgb"], out["rgb"].detach(), atol=1e-4)  # early stop drops T < 1e-4


def test_trunc_exp_gradient_is_clamped():
    x = torch.tensor([0.0, 20.0], requires_grad=True)
    trunc_exp(x).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([1.0, math.exp(15.0)]))


@pytest.mark.parametrize("encoding", ["hash", "frequency", "siren"])
def test_nerf_field_variants_train_and_reload(encoding):
    from inr.fields import build_field

    torch.manual_seed(0)
    cfg = NerfFieldConfig(encoding=encoding, grid={"n_levels": 4, "log2_hashmap_size": 10})
    field = NerfField(3, 4, cfg)
    x = torch.rand(64, 3) * 3 - 1.5
    d = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    rgb, density = field(x, d)
    assert rgb.shape == (64, 3) and density.shape == (64,) and (rgb > 0).all() and (rgb < 1).all()
    (rgb.sum() + density.sum()).backward()
    assert all(p.grad is not None for p in field.parameters())
    # Outside the box the density is zero.
    assert field.density(torch.tensor([[2.0, 0.0, 0.0]])).item() == 0.0
    spec = field.config()
    again = build_field(spec.pop("kind"), spec.pop("d_in"), spec.pop("d_out"), **spec)
    again.load_state_dict(field.state_dict())
    assert torch.equal(again(x, d)[0], rgb)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_rendering_on_a_gpu_matches_the_cpu():
    torch.manual_seed(0)
    field = NerfField(3, 4, NerfFieldConfig(grid={"n_levels": 4, "log2_hashmap_size": 10}))
    grid = OccupancyGrid(torch.tensor(field.cfg.aabb), resolution=16)
    o = torch.tensor([[0.0, 0.0, 4.0], [0.3, 0.1, 4.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    with torch.no_grad():
        cpu = RadianceRenderer(field, grid).render(o, d, torch.ones(3))
        gpu_field, gpu_grid = field.cuda(), grid.cuda()
        gpu = RadianceRenderer(gpu_field, gpu_grid).render(o.cuda(), d.cuda(), torch.ones(3, device="cuda"))
    assert torch.allclose(gpu["rgb"].cpu(), cpu["rgb"], atol=1e-4)
