"""The viewer's server: open a run directory, pick the view of its kind, serve it with viser.

Bad input is an `InputError` with one clear line (not a run directory, an unknown kind, viser
missing); a busy port moves on to the next free one and says so.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import socket
import sys
import threading
import time

from inr.errors import InputError
from inr.train.rundir import RunDir

# Run kind -> "module:class" of its view, imported when a run of that kind is opened.
VIEWS = {"image": "viewer.image_view:ImageView", "sdf": "viewer.sdf_view:SDFView", "nerf": "viewer.nerf_view:NerfView",
         "collection": "viewer.collection_view:collection_view",
         "generator-views": "viewer.generator_views_view:GeneratorViewsView",
         "text-generator": "viewer.generator_text_view:TextGeneratorView"}
# Run kind -> the options of `inr view` its view takes (passed as keyword arguments).
VIEW_OPTIONS = {"generator-views": ("collection",)}


def open_run(path) -> tuple[RunDir, dict]:
    """The run and its config, refusing what the viewer cannot show."""
    run = RunDir.open(path)
    config = run.read_config()
    kind = config.get("kind")
    if kind not in VIEWS:
        raise InputError(f"{path}: no view for run kind {kind!r}; the viewer shows {', '.join(VIEWS)} runs")
    return run, config


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str, port: int, tries: int = 100) -> int:
    """`port` if it is free, else the next free one above it."""
    if not 0 < port < 65536:
        raise InputError(f"--port must be in 1..65535, got {port}")
    for p in range(port, min(port + tries, 65536)):
        if port_is_free(host, p):
            return p
    raise InputError(f"no free port in {port}..{port + tries - 1} on {host}")


def _viser():
    try:
        import viser
    except ImportError:
        raise InputError("the viewer needs viser: pip install viser") from None
    return viser


class Viewer:
    """A viser server showing one run. `live` is the training task when the run is being fitted in
    this process (its weights are shown as they train); without it the run directory is read (and
    re-read while a fit in another process writes checkpoints)."""

    def __init__(self, run_dir, host: str = "127.0.0.1", port: int = 8080, live=None, quiet: bool = False,
                 **options):
        self.run, self.config = open_run(run_dir)
        wrong = [k for k in options if k not in VIEW_OPTIONS.get(self.config["kind"], ())]
        if wrong:
            raise InputError(f"{run_dir}: --{wrong[0]} does not apply to {self.config['kind']} runs")
        viser = _viser()
        chosen = free_port(host, port)
        if chosen != port and not quiet:
            print(f"inr: port {port} is busy; serving on {chosen} instead", file=sys.stderr)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # viser prints a banner; we print one line
                self.server = viser.ViserServer(host=host, port=chosen, verbose=False)
        except OSError as e:
            raise InputError(f"cannot serve on {host}:{chosen} ({e.strerror or e})") from None
        self.server.gui.configure_theme(control_width="medium", dark_mode=False, show_logo=False)
        self.port = self.server.get_port()
        self.url = f"http://{'localhost' if host in ('0.0.0.0', '::') else host}:{self.port}"
        module, cls = VIEWS[self.config["kind"]].split(":")
        try:
            self.view = getattr(importlib.import_module(module), cls)(self.server, self.run, self.config, live, **options)
        except BaseException:
            self._stop_server()
            raise
        self.server.on_client_connect(self.view.connect)
        self.server.on_client_disconnect(self.view.disconnect)

    def stop(self) -> None:
        self.view.close()
        for loop in list(self.view.loops.values()):
            loop.stop(wait=30.0)
        join_background(30.0)  # GUI tasks (a mesh extraction, an export) finish before we return
        self._stop_server()

    def _stop_server(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # and "Server stopped" from its thread
            self.server.stop()

    def wait(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()


def serve(run_dir, host: str = "127.0.0.1", port: int = 8080, block: bool = True, **options) -> Viewer:
    """Start a viewer on `run_dir`, print its URL and (with `block`) serve until Ctrl-C. `options`:
    what the run's view takes (VIEW_OPTIONS)."""
    viewer = Viewer(run_dir, host, port, **options)
    print(f"inr: viewing {viewer.run.path} ({viewer.config['kind']}) at {viewer.url}", flush=True)
    if block:
        viewer.wait()
    return viewer


_TASKS: set[threading.Thread] = set()  # background() threads still running
_TASKS_LOCK = threading.Lock()


def join_background(timeout: float) -> None:
    """Wait (up to `timeout` seconds in all) for the background tasks started so far."""
    import time

    deadline = time.monotonic() + timeout
    with _TASKS_LOCK:
        tasks = [t for t in _TASKS if t is not threading.current_thread()]
    for t in tasks:
        t.join(max(0.0, deadline - time.monotonic()))


def background(fn, *args, name: str = "inr-view-task") -> threading.Thread:
    """Run fn(*args) on a daemon thread, printing (not raising) its errors; `join_background`
    waits for such threads (the viewer's stop does, so none is left inside a kernel at exit)."""
    def run():
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - a GUI action's failure is reported, not fatal
            print(f"inr: viewer: {type(e).__name__}: {e}", file=sys.stderr)

    def tracked():
        try:
            run()
        finally:
            with _TASKS_LOCK:
                _TASKS.discard(threading.current_thread())

    t = threading.Thread(target=tracked, name=name, daemon=True)
    with _TASKS_LOCK:
        _TASKS.add(t)
    t.start()
    return t
