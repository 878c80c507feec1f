"""Signed distance fields: ground truth against analytic distances, losses and gradients, fields,
marching cubes, sphere tracing and shape metrics on hand-made inputs with known answers."""
import math

import numpy as np
import pytest
import torch
import trimesh

from inr.errors import InputError
from inr.fields import build_field
from inr.render.marching_cubes import extract_mesh
from inr.render.sphere_trace import camera_rays, orbit_camera, sphere_trace
from inr.signals.sdf import (AnalyticTarget, MeshTarget, Normalisation, load_mesh, sdf_gradient, siren_sdf_loss,
                             supervised_sdf_loss)
from inr.signals.shape_metrics import iou, point_metrics, shape_metrics, surface_metrics
from scenes.shapes import box_sdf, load_shape_scene, sphere_sdf, torus_sdf

SMALL_GRID = {"n_levels": 6, "log2_hashmap_size": 12, "base_resolution": 8, "finest_resolution": 64}


def _points(n=2000, lo=-1.0, hi=1.0, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, (n, 3)).astype(np.float32)


# -- ground truth -----------------------------------------------------------------------------


@pytest.mark.open3d
def test_mesh_sdf_of_box_matches_analytic_distance():
    half = np.array([1.0, 0.7, 0.5])
    mesh = trimesh.creation.box(extents=2 * half)
    mesh.apply_translation([3.0, -2.0, 1.0])  # input units: off-centre
    target = MeshTarget(mesh, "box")
    assert target.watertight and not target.warnings
    p = _points()
    expected = box_sdf(torch.from_numpy(target.normalisation.to_input(p)).float() - torch.tensor([3.0, -2.0, 1.0]),
                       tuple(half)).numpy() * target.normalisation.scale
    np.testing.assert_allclose(target.sdf(p), expected, atol=2e-5)
    np.testing.assert_array_equal(target.occupancy(p), expected < 0)


@pytest.mark.open3d
def test_mesh_sdf_of_sphere_matches_analytic_distance():
    target = MeshTarget(trimesh.creation.icosphere(subdivisions=5, radius=2.0), "sphere")
    assert target.normalisation.scale == pytest.approx(0.45, rel=1e-3)  # radius 2 -> 0.9
    p = _points()
    expected = np.linalg.norm(p, axis=1) - 0.9
    np.testing.assert_allclose(target.sdf(p), expected, atol=2e-3)  # the icosphere's facets
    d, n = target.closest(p)
    np.testing.assert_allclose(d, np.abs(expected), atol=2e-3)
    np.testing.assert_allclose(np.abs((n * p / np.linalg.norm(p, axis=1, keepdims=True)).sum(1)), 1, atol=2e-2)


@pytest.mark.open3d
def test_sign_survives_a_small_hole_by_ray_voting():
    mesh = trimesh.creation.icosphere(subdivisions=4)
    mesh.update_faces(np.arange(len(mesh.faces)) != 0)  # punch a hole
    target = MeshTarget(mesh, "holey", sign_rays=7)
    assert not target.watertight and "not watertight" in target.warnings[0]
    p = _points(4000)
    truth = np.linalg.norm(p, axis=1) < target.normalisation.scale * 1.0
    far = np.abs(np.linalg.norm(p, axis=1) - 0.9) > 0.02
    assert (target.occupancy(p)[far] == truth[far]).mean() > 0.99


def test_analytic_target_surface_samples_are_on_the_surface():
    target = AnalyticTarget(load_shape_scene("torus"))
    pts, normals = target.sample_surface(5000, seed=3)
    assert np.abs(target.sdf(pts)).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-5)
    # outward: stepping along the normal increases the distance
    assert (target.sdf(pts + 0.01 * normals) > 0.009).all()


def test_analytic_shapes_are_distances():
    p = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.6, 0.0]])
    assert sphere_sdf(p).tolist() == pytest.approx([1.0, -1.0, -0.4])
    assert torus_sdf(torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])).tolist() == pytest.approx([-0.4, 0.6])
    assert float(box_sdf(torch.tensor([[2.0, 1.7, 0.0]]))) == pytest.approx(math.sqrt(2))
    n = Normalisation.from_bounds((-1, -2, 0), (3, 2, 1))
    assert n.centre == (1.0, 0.0, 0.5) and n.scale == pytest.approx(0.45)
    np.testing.assert_allclose(n.to_input(n.to_field([[5.0, 6.0, 7.0]])), [[5.0, 6.0, 7.0]])


# -- mesh files ---------------------------------------------------------------------------------


# Bad mesh files and a word of the one-line error each gives (also used by test_sdf_cli).
BAD_MESH_FILES = [
    ("empty.obj", "", "empty"),
    ("nofaces.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),
    ("nan.obj", "v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n", "NaN or infinite"),
    ("garbage.ply", "this is not a ply file\n", "cannot read mesh"),
    ("broken.ply", "ply\nformat ascii 1.0\nelement vertex 3\ngarbage\n", "cannot read mesh"),
    ("cloud.ply", ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                   "property float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n"), "point cloud"),
]


@pytest.mark.parametrize("name,content,message", [*BAD_MESH_FILES, ("shape.xyz", "0 0 0\n", "unsupported mesh format")])
def test_bad_mesh_files_are_reported(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_mesh(str(path))


def test_missing_mesh_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_mesh(str(tmp_path / "nope.obj"))


# -- losses, gradients and fields ------------------------------------------------------------------


class _Sphere(torch.nn.Module):
    def forward(self, x):
        return (x.norm(dim=-1) - 0.5)[..., None]


def test_losses_vanish_on_an_exact_sdf():
    x = torch.randn(100, 3)
    surface = 0.5 * x / x.norm(dim=-1, keepdim=True)
    off = torch.rand(50, 3) * 2 - 1
    f_s, g_s = sdf_gradient(_Sphere(), surface)
    f_o, g_o = sdf_gradient(_Sphere(), off)
    _, logs = siren_sdf_loss(f_s, g_s, surface / 0.5, f_o, g_o)
    assert float(logs["sdf"]) < 1e-6 and float(logs["normal"]) < 1e-6 and float(logs["eikonal"]) < 1e-5
    loss, logs = supervised_sdf_loss(f_o, off.norm(dim=-1) - 0.5, g_o, surface / 0.5, g_s)
    assert float(loss.detach()) < 1e-5


# geometric init gives the hash features zero weights (so a zero table gradient at step 0): off here
@pytest.mark.parametrize("kind,options", [("hash_sdf", {"grid": SMALL_GRID, "geometric_init": False}),
                                          ("siren", {"hidden": [32, 32]})])
def test_eikonal_loss_differentiates_twice(kind, options):
    field = build_field(kind, 3, 1, generator=torch.Generator().manual_seed(0), **options)
    x = torch.rand(256, 3) * 2 - 1
    _, g = sdf_gradient(field, x)
    ((g.norm(dim=-1) - 1) ** 2).mean().backward()
    grads = dict(field.named_parameters())
    # the output bias cannot change a gradient; the first layer and the hash table (second derivatives) must
    for name in ["net.layers.0.weight"] + (["grid.params"] if kind == "hash_sdf" else []):
        gr = grads[name].grad
        assert gr is not None and torch.isfinite(gr).all() and float(gr.abs().sum()) > 0, name


def test_geometric_init_starts_as_a_sphere():
    field = build_field("hash_sdf", 3, 1, grid=SMALL_GRID, hidden=[64, 64], sphere_radius=0.5,
                        generator=torch.Generator().manual_seed(0))
    x = torch.rand(2000, 3) * 2 - 1
    with torch.no_grad():
        f = field(x)[:, 0]
    expected = x.norm(dim=-1) - 0.5
    assert float((f - expected).abs().mean()) < 0.2  # in expectation over initialisations; one draw is rougher
    assert float(((f < 0) == (expected < 0)).float().mean()) > 0.9


@pytest.fixture
def one_thread():
    """Small problems run fastest on one thread (and do not suffer when the CPU is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_fitted_sphere_has_unit_gradients_and_true_normals(one_thread):
    """Fit the hash SDF field to the analytic sphere; check eikonal residual and normals on the surface."""
    from inr.train.loop import TrainConfig
    from inr.train.sdf import SDFFitConfig, build_sdf_task

    cfg = SDFFitConfig(target="sphere")
    cfg.hash.grid = dict(SMALL_GRID)
    cfg.samples.surface_points = cfg.samples.near_points = 20_000
    cfg.samples.uniform_points = 2_000
    cfg.loss.gradient_points = 1024
    train = TrainConfig(steps=100, lr=1e-2, batch_size=2048, beta2=0.99, eps=1e-15, schedule="exp")
    target = AnalyticTarget(load_shape_scene("sphere"))
    task = build_sdf_task(target, cfg, train, torch.device("cpu"))
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    for step in range(train.steps):
        opt.zero_grad()
        task.loss(step)[0].backward()
        opt.step()
    pts, normals = target.sample_surface(2000, seed=5)
    f, g = sdf_gradient(task.model, torch.from_numpy(pts), create_graph=False)
    assert float(f.detach().abs().mean()) < 1e-2
    assert float((g.norm(dim=-1) - 1).abs().mean()) < 0.1
    cos = torch.nn.functional.cosine_similarity(g, torch.from_numpy(normals), dim=-1)
    assert float(cos.mean()) > 0.98


# -- marching cubes and sphere tracing ---------------------------------------------------------------


def test_marching_cubes_of_a_sphere_and_a_torus():
    v, f = extract_mesh(lambda p: p.norm(dim=-1) - 0.6, resolution=64)
    mesh = trimesh.Trimesh(v, f, process=False)
    assert mesh.is_watertight and mesh.volume > 0  # outward faces
    assert np.abs(np.linalg.norm(v, axis=1) - 0.6).max() < 2e-3
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.6 ** 3, rel=0.01)
    v, f = extract_mesh(lambda p: torus_sdf(p, 0.5, 0.2), resolution=80)
    torus = trimesh.Trimesh(v, f, process=False)
    assert torus.is_watertight and torus.euler_number == 0  # genus 1
    assert np.abs(torus_sdf(torch.from_numpy(v), 0.5, 0.2).numpy()).max() < 2e-3


def test_sparse_extraction_equals_dense():
    fn = load_shape_scene("composite").sdf
    dense = extract_mesh(lambda p: fn(p * 1.1), resolution=72, sparse=False)
    sparse = extract_mesh(lambda p: fn(p * 1.1), resolution=72, sparse=True)
    assert len(sparse[1]) == len(dense[1])
    np.testing.assert_allclose(np.sort(sparse[0], axis=0), np.sort(dense[0], axis=0), atol=1e-6)


def test_sphere_trace_hits_an_analytic_sphere():
    c2w = orbit_camera(30.0, 20.0, 3.0)
    o, d = camera_rays(c2w, 40, 30, 40.0)
    t, hit = sphere_trace(lambda p: p.norm(dim=-1) - 0.5, o, d)
    # analytic ray-sphere intersection
    b = (o * d).sum(-1)
    disc = b ** 2 - ((o * o).sum(-1) - 0.25)
    truth = disc > 0
    assert (hit == truth).float().mean() > 0.99
    both = hit & (disc > 0.02)  # away from the silhouette, where sphere tracing converges slowly
    np.testing.assert_allclose(t[both], (-b - disc.clamp(min=0).sqrt())[both], atol=2e-3)


# -- metrics -----------------------------------------------------------------------------------


def test_point_metrics_known_answers():
    a = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    up = np.tile([0.0, 0, 1], (4, 1))
    same = point_metrics(a, up, a, up)
    assert same["chamfer_l1"] == 0 and same["chamfer_l2"] == 0
    assert same["normal_consistency"] == 1 and same["fscore"] == 1
    shifted = point_metrics(a, up, a + [0, 0, 0.1], -up)  # flipped normals count as consistent (|cos|)
    assert shifted["chamfer_l1"] == pytest.approx(0.1) and shifted["chamfer_l2"] == pytest.approx(0.01)
    assert shifted["normal_consistency"] == 1 and shifted["fscore"] == 0
    side = point_metrics(a, up, a, np.tile([1.0, 0, 0], (4, 1)))
    assert side["normal_consistency"] == 0
    # two of four predicted points beyond the threshold: precision 0.5, recall 1 -> F = 2/3
    pred = a + np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0.5], [0, 0, 0.5]])
    half = point_metrics(pred, up, a, up, threshold=0.01)
    assert half["precision"] == 0.5 and half["recall"] == 0.5  # the lifted points leave two targets uncovered
    assert half["fscore"] == pytest.approx(0.5)
    m = surface_metrics([0.0, 0.02], [1, 1], [0.0, 0.0], [1, 1])
    assert m["precision"] == 0.5 and m["recall"] == 1 and m["fscore"] == pytest.approx(2 / 3, abs=1e-5)
    assert m["chamfer_l1"] == pytest.approx(0.005)


def test_iou_known_answers():
    assert iou([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(1 / 3)
    assert iou([0, 0], [0, 0]) == 1.0


@pytest.mark.open3d
def test_shape_metrics_of_concentric_spheres():
    """A sphere mesh of radius 0.9 + d against the analytic sphere of radius 0.9: Chamfer = d."""
    target = AnalyticTarget(load_shape_scene("sphere"))  # radius 0.9 in the field's frame
    delta = 0.018  # 0.01 in the metrics box
    mesh = trimesh.creation.icosphere(subdivisions=6, radius=0.9 + delta)
    occ = lambda p: np.linalg.norm(p, axis=1) < 0.9 + delta  # noqa: E731
    m = shape_metrics(mesh.vertices, mesh.faces, target, occ, 0.5 / 0.9, n_surface=20_000, n_iou=20_000)
    assert m["chamfer_l1"] == pytest.approx(0.01, rel=0.03)
    assert m["chamfer_l2"] == pytest.approx(1e-4, rel=0.06)
    assert m["normal_consistency"] > 0.999
    assert m["iou"] == pytest.approx(0.9 ** 3 / (0.9 + delta) ** 3, abs=0.01)
    exact = shape_metrics(mesh.vertices * 0.9 / (0.9 + delta), mesh.faces, target,
                          lambda p: np.linalg.norm(p, axis=1) < 0.9, 0.5 / 0.9, n_surface=20_000, n_iou=20_000)
    assert exact["fscore"] == 1.0 and exact["chamfer_l1"] < 5e-4 and exact["iou"] > 0.99
