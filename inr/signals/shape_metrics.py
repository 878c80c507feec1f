"""Shape metrics with Occupancy Networks' conventions (Mescheder et al. 2019).

Everything is measured in the [-0.5, 0.5]^3 box in which the target's bounding box has longest
side 1 (`inr.signals.sdf.METRIC_SCALE` maps the field's frame there), on `N_SURFACE` = 100,000
surface samples of each shape:

    accuracy      mean distance from predicted samples to the target
    completeness  mean distance from target samples to the prediction
    chamfer_l1    (accuracy + completeness) / 2                    (Euclidean distances)
    chamfer_l2    the same with squared distances
    normal_consistency  mean |cos| between each sample's normal and the other surface's normal at
                  the closest point, averaged over both directions
    fscore        2 P R / (P + R) with P, R the fractions of predicted / target samples within
                  `FSCORE_THRESHOLD` = 0.01 (1% of the box side) of the other surface
    iou           volumetric IoU of inside/outside on `N_IOU` = 100,000 uniform points of the box

`point_metrics` compares two point sets (nearest neighbours, exactly the Occupancy Networks code).
`shape_metrics` compares a predicted mesh with a target shape and measures each sample's distance to
the other *surface* (closest point on its triangles, or the analytic distance) instead of to the
other's samples: the same quantity without the sampling floor of point-to-point distances (about
2e-3 Chamfer-L1 between two 100k samplings of one bunny-sized surface).

>>> a = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
>>> n = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
>>> point_metrics(a, n, a + [0.0, 0.0, 0.1], n)["chamfer_l1"]
0.1
"""
from __future__ import annotations

import numpy as np

from inr.optional import require_open3d

N_SURFACE = 100_000
N_IOU = 100_000
FSCORE_THRESHOLD = 0.01
METRIC_KEYS = ("chamfer_l1", "chamfer_l2", "normal_consistency", "fscore", "iou")


def surface_metrics(d_pred: np.ndarray, cos_pred: np.ndarray, d_target: np.ndarray, cos_target: np.ndarray,
                    threshold: float = FSCORE_THRESHOLD) -> dict:
    """The surface metrics from per-sample distances to the other shape (d_pred: predicted samples
    to the target; d_target: target samples to the prediction) and |cos| of their normals."""
    d_pred, d_target = np.asarray(d_pred, np.float64), np.asarray(d_target, np.float64)
    precision = float((d_pred < threshold).mean())
    recall = float((d_target < threshold).mean())
    return {
        "chamfer_l1": round_sig(0.5 * (d_pred.mean() + d_target.mean())),
        "chamfer_l2": round_sig(0.5 * ((d_pred ** 2).mean() + (d_target ** 2).mean())),
        "normal_consistency": round_sig(0.5 * (np.abs(cos_pred).mean() + np.abs(cos_target).mean())),
        "fscore": round_sig(2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0),
        "precision": round_sig(precision), "recall": round_sig(recall),
    }


def round_sig(x: float, digits: int = 6) -> float:
    """float(x) to `digits` significant digits (JSON stays readable)."""
    return float(f"{float(x):.{digits}g}")


def point_metrics(pred_points, pred_normals, target_points, target_normals, threshold: float = FSCORE_THRESHOLD) -> dict:
    """Point-set Chamfer, normal consistency and F-score by nearest neighbours (KD-trees)."""
    from scipy.spatial import cKDTree

    pred_points, target_points = np.asarray(pred_points, np.float64), np.asarray(target_points, np.float64)
    pred_normals = _unit(pred_normals)
    target_normals = _unit(target_normals)
    d_pred, i_pred = cKDTree(target_points).query(pred_points)
    d_target, i_target = cKDTree(pred_points).query(target_points)
    cos_pred = (pred_normals * target_normals[i_pred]).sum(-1)
    cos_target = (target_normals * pred_normals[i_target]).sum(-1)
    return surface_metrics(d_pred, cos_pred, d_target, cos_target, threshold)


def iou(occ_a: np.ndarray, occ_b: np.ndarray) -> float:
    """|A and B| / |A or B| of two boolean occupancy arrays (1.0 when both are empty)."""
    a, b = np.asarray(occ_a, bool), np.asarray(occ_b, bool)
    union = (a | b).sum()
    return round_sig((a & b).sum() / union if union else 1.0)


def _unit(n) -> np.ndarray:
    n = np.asarray(n, np.float64)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def shape_metrics(verts: np.ndarray, faces: np.ndarray, target, occupancy_fn, scale: float,
                  n_surface: int = N_SURFACE, n_iou: int = N_IOU, seed: int = 0) -> dict:
    """Metrics of a predicted mesh (verts, faces in the field's frame) against `target` (an
    `inr.signals.sdf.SDFTarget`), `occupancy_fn(points [N, 3] field frame) -> bool [N]` the
    prediction's inside test for IoU, and `scale` the map from the field's frame to the metrics box.

    An empty prediction scores chamfer = inf (reported as a large number), the other metrics 0."""
    o3d = require_open3d()
    import trimesh

    from .sdf import closest_on_scene

    rng = np.random.default_rng(seed)
    box = 0.5 / scale  # the metrics box [-0.5, 0.5]^3 in the field's frame
    uniform = rng.uniform(-box, box, (n_iou, 3)).astype(np.float32)
    volume_iou = iou(occupancy_fn(uniform), target.occupancy(uniform))
    if len(faces) == 0:
        return {"chamfer_l1": 1e9, "chamfer_l2": 1e9, "normal_consistency": 0.0, "fscore": 0.0,
                "precision": 0.0, "recall": 0.0, "iou": volume_iou}
    mesh = trimesh.Trimesh(verts, faces, process=False)
    pred_pts, face = trimesh.sample.sample_surface(mesh, n_surface, seed=seed)
    pred_normals = _unit(mesh.face_normals[face])
    target_pts, target_normals = target.sample_surface(n_surface, seed=seed + 1)
    d_pred, n_at_target = target.closest(pred_pts.astype(np.float32))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(verts, np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(faces, np.uint32)))
    d_target, n_at_pred = closest_on_scene(scene, np.asarray(mesh.face_normals, np.float32), target_pts)
    cos_pred = (pred_normals * _unit(n_at_target)).sum(-1)
    cos_target = (_unit(target_normals) * _unit(n_at_pred)).sum(-1)
    out = surface_metrics(d_pred * scale, cos_pred, d_target * scale, cos_target)
    out["iou"] = volume_iou
    return out
