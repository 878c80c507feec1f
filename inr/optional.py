"""Third-party modules that need system libraries, imported on first use.

open3d's import loads libusb-1.0, which a headless Debian or Ubuntu lacks until `apt-get install
libusb-1.0-0` (`make setup` installs it where it can). Only the commands that raycast meshes need
open3d (SDF ground truth and metrics, the procedural multi-view scenes), so everything else keeps
working without it and those commands stop with one line (an `InputError`, exit code 2).

>>> from inr.optional import open3d_available
>>> isinstance(open3d_available(), bool)
True
"""
from __future__ import annotations

import functools
import re

from .errors import InputError


@functools.lru_cache(maxsize=None)
def open3d_import_error() -> str | None:
    """Why open3d cannot be imported, in one line; None when it can."""
    try:
        import open3d  # noqa: F401
    except (ImportError, OSError) as e:  # a missing shared library surfaces as either
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        library = re.search(r"(lib[\w.+-]+\.so[\w.]*)", message)
        if library and "libusb" in library.group(1):
            return (f"open3d cannot be imported: {library.group(1)} is missing; install it with "
                    "`sudo apt-get install -y libusb-1.0-0` (or run `make setup`)")
        if library:
            return f"open3d cannot be imported: {library.group(1)} is missing ({message})"
        if isinstance(e, ModuleNotFoundError) and e.name == "open3d":
            return "open3d is not installed; install it with `pip install open3d`"
        return f"open3d cannot be imported: {message}"
    return None


def open3d_available() -> bool:
    return open3d_import_error() is None


def require_open3d():
    """The open3d module, or an InputError naming what is missing and how to install it."""
    error = open3d_import_error()
    if error is not None:
        raise InputError(error)
    import open3d

    return open3d
