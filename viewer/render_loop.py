"""One render thread per browser: frames from the client's camera, streamed as its background.

While the camera moves, frames are rendered at the resolution that keeps up (AdaptiveResolution),
each from the newest camera; once it has been still for `still_seconds` the view is re-rendered at
the screen's resolution. A full-resolution render that a newer camera (or new weights, or another
display mode) makes stale is interrupted: the render function polls `abort()` between chunks.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .cameras import AdaptiveResolution, viser_to_c2w


@dataclass
class CameraState:
    """A snapshot of a browser camera: OpenGL c2w [4, 4], vertical fov (radians), canvas size."""

    c2w: np.ndarray
    fov: float
    aspect: float
    screen_height: int

    @classmethod
    def of(cls, camera) -> CameraState:
        return cls(viser_to_c2w(camera.wxyz, camera.position), float(camera.fov), float(camera.aspect),
                   int(camera.image_height))


# render(camera, width, height, abort, still) -> uint8 image [height, width, 3], or None when aborted;
# `still` is False for the quick frames of a moving camera.
RenderFn = Callable[[CameraState, int, int, Callable[[], bool], bool], "np.ndarray | None"]


class ClientRenderLoop:
    """Renders for one client on its own thread until `stop()`."""

    def __init__(self, client, render: RenderFn, resolution: AdaptiveResolution | None = None,
                 still_seconds: float = 0.25, jpeg_quality: int = 90, enabled: bool = True):
        self.client, self.render = client, render
        self.resolution = resolution or AdaptiveResolution()
        self.still_seconds, self.jpeg_quality = still_seconds, jpeg_quality
        self._cond = threading.Condition()
        self._version = 0          # bumped by every request
        self._moved_at = 0.0       # when the camera last moved
        self._stopped = False
        self.enabled = enabled     # False: nothing is drawn (the background is cleared)
        self.frames = {"moving": 0, "still": 0, "aborted": 0}
        self.frame_seconds: list[float] = []  # of moving frames (render + send)
        self.last_frame: np.ndarray | None = None
        self.last_still: np.ndarray | None = None
        self.still_event = threading.Event()  # set after each full-resolution frame
        client.camera.on_update(lambda _: self.request(moved=True))
        self._thread = threading.Thread(target=self._run, name=f"inr-view-{client.client_id}", daemon=True)
        self._thread.start()

    def request(self, moved: bool = False) -> None:
        """Ask for a new frame: after a camera move (low resolution first) or a content change."""
        with self._cond:
            self._version += 1
            if moved:
                self._moved_at = time.monotonic()
            self.still_event.clear()
            self._cond.notify_all()

    def stop(self, wait: float = 0.0) -> None:
        """Stop rendering; with `wait`, give a frame in progress that long to finish (a thread still
        inside a compiled kernel when the interpreter exits can abort the process)."""
        with self._cond:
            self._stopped = True
            self._version += 1
            self._cond.notify_all()
        if wait and self._thread is not threading.current_thread():
            self._thread.join(wait)

    def _run(self) -> None:
        seen, refined = 0, True  # nothing is drawn before the first request
        while True:
            with self._cond:
                while not self._stopped and self._version == seen and refined:
                    self._cond.wait()
                if self._stopped:
                    return
                changed = self._version != seen
                seen = self._version
                moving = time.monotonic() - self._moved_at < self.still_seconds
            try:
                if changed and moving:
                    self._frame(seen, still=False)
                    refined = False
                    continue  # render the next camera, if there is one, before refining
                if changed or not refined:
                    wait = self.still_seconds - (time.monotonic() - self._moved_at)
                    if wait > 0:  # let the camera settle before the expensive frame
                        with self._cond:
                            self._cond.wait(wait)
                        if self._version != seen:
                            continue
                    refined = self._frame(seen, still=True)
            except Exception:  # noqa: BLE001 - a render error must not kill the client's thread
                traceback.print_exc()
                refined = True

    def _frame(self, version: int, still: bool) -> bool:
        """Render and send one frame; False when a newer request interrupted it."""
        if not self.enabled:
            self.client.scene.set_background_image(None)
            return True
        camera = CameraState.of(self.client.camera)
        size = (self.resolution.still_size if still else self.resolution.moving_size)(camera.aspect, camera.screen_height)
        start = time.perf_counter()
        # A moving frame is small (it fits the time budget) and always finishes: interrupting it at
        # every camera message would show nothing while the camera moves. A still frame is large:
        # any new request interrupts it.
        abort = (lambda: self._version != version or self._stopped) if still else (lambda: self._stopped)
        image = self.render(camera, size[0], size[1], abort, still)
        if image is None:
            self.frames["aborted"] += 1
            return False
        self.resolution.record(size[0] * size[1], time.perf_counter() - start)
        if self._stopped:  # the browser left while this frame rendered
            return True
        self.client.scene.set_background_image(image, format="jpeg", jpeg_quality=self.jpeg_quality)
        self.last_frame = image
        if still:
            self.frames["still"] += 1
            self.last_still = image
            self.still_event.set()
        else:
            self.frames["moving"] += 1
            self.frame_seconds.append(time.perf_counter() - start)
        return True
