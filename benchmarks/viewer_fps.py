"""How fast the NeRF view refreshes while the camera moves: a headless Chromium opens the viewer on
a fitted NeRF run, the camera orbits the scene (moved from the server at 30 updates per second, as
a dragging mouse would), and the frames delivered to the page per second are counted. Prints one
JSON line.

    python benchmarks/viewer_fps.py runs/blocks-nerf [--seconds 6] [--threads 1]

Without a run directory, runs/blocks-nerf is fitted first (60 s: `inr fit nerf --max-seconds 60`).
Without chromium, the render loop is driven by the same camera path without a page ("browser":
false in the output).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def orbit(view, t: float) -> tuple:
    """(c2w, fov) of a camera orbiting the scene at 45 degrees per second, from training view 0."""
    import numpy as np

    c2w, fov = view.training_view(0)
    angle = math.radians(45.0 * t)
    up = view.up
    k = np.array([[0, -up[2], up[1]], [up[2], 0, -up[0]], [-up[1], up[0], 0]])
    rot = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k  # Rodrigues about `up`
    out = np.eye(4)
    out[:3, :3] = rot @ c2w[:3, :3]
    out[:3, 3] = view.center + rot @ (c2w[:3, 3] - view.center)
    return out, fov


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", default="runs/blocks-nerf")
    p.add_argument("--seconds", type=float, default=6.0, help="how long the camera moves")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--height", type=int, default=640)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.run, "model.safetensors").exists():
        from inr.cli.main import main as inr

        print(f"viewer_fps: fitting {args.run} (60 s)", file=sys.stderr)
        if inr(["fit", "nerf", "blocks", "--max-seconds", "60", "--quiet", "--out", args.run]) != 0:
            return 1

    from viewer.browser import Browser, find_chromium
    from viewer.nerf_view import set_client_camera
    from viewer.server import Viewer, free_port

    viewer = Viewer(args.run, port=free_port("127.0.0.1", 8900), quiet=True)
    view = viewer.view
    view.show_cameras.value = False
    view._set_cameras_visible()
    browser = Browser(args.width, args.height) if find_chromium() else None
    try:
        if browser is not None:
            browser.open(viewer.url)
            deadline = time.monotonic() + 60
            while not view.loops and time.monotonic() < deadline:
                time.sleep(0.05)
            loop = next(iter(view.loops.values()))
            loop.still_event.wait(60)
            client = loop.client
            start_frames = loop.frames["moving"]
            t0 = time.monotonic()
            while (t := time.monotonic() - t0) < args.seconds:
                set_client_camera(client, *orbit(view, t), view.center)
                time.sleep(1 / 30)
            moving = loop.frames["moving"] - start_frames
            seconds = time.monotonic() - t0
            times = loop.frame_seconds[-moving:] if moving else []
            size = loop.resolution.moving_size(client.camera.aspect, client.camera.image_height)
            screen = (client.camera.image_width, client.camera.image_height)
        else:  # no page: the loop's own moving-frame path, camera by camera
            from viewer.cameras import AdaptiveResolution
            from viewer.render_loop import CameraState

            res = AdaptiveResolution(frame_seconds=view.frame_seconds, max_pixels=view.max_pixels)
            aspect, screen = args.width / args.height, (args.width, args.height)
            times, t0 = [], time.monotonic()
            while (t := time.monotonic() - t0) < args.seconds:
                c2w, fov = orbit(view, t)
                size = res.moving_size(aspect, args.height)
                s = time.perf_counter()
                view.render(CameraState(c2w, fov, aspect, args.height), size[0], size[1], lambda: False)
                times.append(time.perf_counter() - s)
                res.record(size[0] * size[1], times[-1])
            moving, seconds = len(times), time.monotonic() - t0
    finally:
        if browser is not None:
            browser.close()
        viewer.stop()
    print(json.dumps({
        "benchmark": "viewer_fps", "run": args.run, "browser": browser is not None, "threads": torch.get_num_threads(),
        "screen": list(screen), "moving_frame": list(size), "seconds": round(seconds, 2), "moving_frames": moving,
        "fps_moving": round(moving / seconds, 2),
        "render_ms_median": round(1000 * sorted(times)[len(times) // 2], 1) if times else None,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
