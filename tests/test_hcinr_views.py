"""The viewer draws HC-INR's warp: the deformed grid over an image (the lattice's warped positions
as line segments, behind a checkbox) and an SDF slice of |x_L - x|; headless (no browser)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from inr.cli.main import main
from inr.hyper.hcinr import HCINRConfig, HCINRField
from viewer.server import Viewer, free_port
from viewer.warp_overlay import displacement, lattice_segments

TINY = dict(levels=2, dense_levels=1, base_resolution=4, n_features=2, log2_hashmap_size=6, code_dim=4,
            hyper_hidden=(8,), compact_hidden=(8,))
SMALL = ["--hcinr.levels", "2", "--hcinr.base-resolution", "8", "--hcinr.log2-hashmap-size", "10",
         "--hcinr.compact-hidden", "32", "32", "--hcinr.hyper-hidden", "16"]


def _bent(d_in: int) -> HCINRField:
    """A field whose transforms are far from the identity (its heads are zero at initialisation)."""
    field = HCINRField(d_in, 1, HCINRConfig(**TINY), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for hyper in field.hypernetworks:
            for p in hyper.head.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 5)
    return field


def test_the_lattice_is_regular_at_initialisation_and_deformed_within_the_bound_after():
    field = HCINRField(2, 3, HCINRConfig(**TINY))
    seg, largest = lattice_segments(field, lines=5, per_cell=2)
    assert seg.shape == (2 * 5 * 4 * 2, 2, 2) and largest == 0.0
    ends = np.unique(np.round(seg.reshape(-1, 2), 6), axis=0)
    assert len(ends) == 5 * 5 + 2 * 5 * 4  # crossings, and one midpoint per cell edge
    bent = _bent(2)
    seg2, largest2 = lattice_segments(bent, lines=5, per_cell=2, gain=3.0)
    assert 0 < largest2 <= sum(bent.bounds) * 2 ** 0.5 + 1e-6
    moved = np.abs(seg2 - seg).max()
    assert largest2 * 3.0 * 0.5 < moved <= largest2 * 3.0 + 1e-5  # drawn with the gain
    assert (displacement(bent, torch.rand(50, 2) * 2 - 1) <= sum(bent.bounds) * 2 ** 0.5 + 1e-6).all()
    assert float(displacement(_bent(3), torch.rand(50, 3) * 2 - 1).max()) > 0


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "image-hcinr"
    assert main(["fit", "image", "camera", "--size", "32", "--field", "hcinr", "--steps", "20", "--quiet",
                 "--out", str(out), *SMALL]) == 0
    return out


@pytest.mark.slow
def test_image_view_draws_the_deformed_grid_on_request(image_run):
    viewer = Viewer(image_run, port=free_port("127.0.0.1", 8750))
    try:
        view = viewer.view
        assert view.show_warp is not None and not view.show_warp.value and view._warp is None  # off by default
        view.show_warp.value = True  # as if ticked in the page
        view.update_warp()
        points = np.asarray(view._warp.points)
        assert points.shape[1:] == (2, 3) and view._warp.visible
        reach = 1 + sum(view.source.module.bounds) * 2 ** 0.5  # the lattice spans [-1, 1]; the warp is bounded
        assert np.abs(points[..., 0]).max() <= reach and "largest |x_L - x|" in view.warp_info.content
        trained = view.warp_segments
        view.warp_gain.value = 10.0
        view.update_warp()
        assert not np.allclose(view.warp_segments, trained)  # 20 steps moved the lattice; the gain shows it
        view.show_warp.value = False
        view.update_warp()
        assert not view._warp.visible
    finally:
        viewer.stop()


@pytest.mark.slow
@pytest.mark.open3d
def test_sdf_view_slices_the_warp(tmp_path):
    out = tmp_path / "sphere-hcinr"
    assert main(["fit", "sdf", "sphere", "--field", "hcinr", "--out", str(out), "--steps", "20", "--quiet",
                 "--batch-size", "2048", "--eval-resolution", "24", "--samples.surface-points", "2000",
                 "--samples.near-points", "2000", "--samples.uniform-points", "500", "--loss.gradient-points", "128",
                 "--device", "cpu", *SMALL]) == 0
    viewer = Viewer(out, port=free_port("127.0.0.1", 8760))
    try:
        view = viewer.view
        distances = view.slice_image()
        view.slice_shows.value = "warp |x_L - x|"  # as if picked in the page
        warp = view.slice_image()
        assert warp.shape == distances.shape and np.abs(warp.astype(int) - distances.astype(int)).mean() > 5
        assert "up to" in view.slice_info.content and warp.std() > 1  # the warp is not uniform
    finally:
        viewer.stop()
