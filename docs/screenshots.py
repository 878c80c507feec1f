"""The README's viewer screenshots: each view opened in headless Chromium, saved as PNG here.

    python docs/screenshots.py IMAGE_RUN SDF_RUN NERF_RUN
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HIDE_NOTICES = ("document.head.insertAdjacentHTML('beforeend', '<style>.mantine-Notification-root,"
                ".mantine-Notifications-root {display: none !important}</style>')")


def shoot(run: str, out: Path, setup=None, settle: float = 2.0) -> None:
    import imageio.v3 as iio

    from viewer.browser import Browser
    from viewer.server import Viewer, free_port

    viewer = Viewer(run, port=free_port("127.0.0.1", 8950), quiet=True)
    try:
        if setup is not None:
            setup(viewer.view)
        with Browser(1100, 700) as browser:
            browser.open(viewer.url)
            browser.wait_for_text("Training", timeout=60)
            deadline = time.monotonic() + 120
            while not viewer.view.loops and time.monotonic() < deadline:
                time.sleep(0.1)
            loop = next(iter(viewer.view.loops.values()))
            time.sleep(settle)
            while loop.enabled and time.monotonic() < deadline:  # the full-resolution frame, settled
                if loop.still_event.wait(1.0):
                    time.sleep(1.0)
                    if loop.still_event.is_set():
                        break
            browser.evaluate(HIDE_NOTICES)
            time.sleep(1.0)
            iio.imwrite(out, browser.screenshot())
            print(f"{out}", flush=True)
    finally:
        viewer.stop()


def sdf_setup(view) -> None:
    view.slice_offset.value = -0.1
    view.update_slice()


def main() -> int:
    here = Path(__file__).resolve().parent
    image_run, sdf_run, nerf_run = sys.argv[1:4]
    shoot(image_run, here / "viewer_image.png")
    shoot(sdf_run, here / "viewer_sdf.png", sdf_setup, settle=6.0)
    shoot(nerf_run, here / "viewer_nerf.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
