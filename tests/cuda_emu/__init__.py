"""The CUDA kernels (kernels/csrc: fused MLP and hash grid) run on the CPU, for tests without a GPU.

`include/` replaces the CUDA headers with a host emulation: one fiber per CUDA thread, barriers
for __syncthreads/__syncwarp, dynamic shared memory poisoned with NaN before each block. The
kernels and launchers are compiled unchanged (with -DINR_CUDA_EMU, which only swaps the <<<>>>
launch and the dynamic shared-memory declaration: kernels/csrc/launch.cuh), so index arithmetic,
barrier placement and shared-memory phases are exercised exactly; timing, occupancy, memory
coalescing and the hardware's float rounding of fast paths are not.

`ext()` returns an object with the torch extension's functions (the names and signatures of
kernels/csrc/bindings.cpp), taking CPU tensors, so `inr.backends.cuda` (and cuda_tc, cuda_jvp,
cuda_hashgrid) run on it unchanged.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CSRC = HERE.parents[1] / "kernels" / "csrc"
MAX_LAYERS = 16


def _sources() -> list[Path]:
    return [HERE / "harness.cpp", *sorted((HERE / "include").glob("*.h")), *sorted(CSRC.glob("mlp*")),
            *sorted(CSRC.glob("hashgrid*")), CSRC / "launch.cuh"]


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """Build (cached by the sources' hash) and load the emulation library; None without g++."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        return None
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in _sources())).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"inr_cuda_emu_{digest}" / "libinr_cuda_emu.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        cmd = [cxx, "-std=c++20", "-O2", "-shared", "-fPIC", "-DINR_CUDA_EMU", "-Wno-unknown-pragmas",
               "-I", str(HERE / "include"), "-I", str(CSRC), str(HERE / "harness.cpp"), "-o", str(tmp)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"building the CUDA emulation failed:\n{done.stderr[-4000:]}")
        os.replace(tmp, out)
    return ctypes.CDLL(str(out))


_P = ctypes.c_void_p
_PA = _P * MAX_LAYERS
_IA = ctypes.c_int64 * MAX_LAYERS
_HEAD = [(n, ctypes.c_int) for n in ("B", "N", "d_in", "d_out", "width", "n_layers")]


class FwdArgs(ctypes.Structure):
    _fields_ = _HEAD + [("act", ctypes.c_int), ("out_act", ctypes.c_int), ("w0_first", ctypes.c_float),
                        ("w0_hidden", ctypes.c_float), ("x", _P), ("x_stride", ctypes.c_int64), ("w", _PA),
                        ("w_stride", _IA), ("b", _PA), ("b_stride", _IA), ("y", _P), ("save_h", _P), ("save_z", _P)]


class BwdArgs(ctypes.Structure):
    _fields_ = _HEAD + [("act", ctypes.c_int), ("out_act", ctypes.c_int), ("w0_first", ctypes.c_float),
                        ("w0_hidden", ctypes.c_float), ("dy", _P), ("y", _P), ("save_h", _P), ("save_z", _P),
                        ("w", _PA), ("w_stride", _IA), ("dz", _PA), ("dx", _P), ("db", _PA), ("db_stride", _IA)]


class JvpArgs(ctypes.Structure):
    _fields_ = _HEAD + [("act", ctypes.c_int), ("w0_first", ctypes.c_float), ("w0_hidden", ctypes.c_float),
                        ("x", _P), ("x_stride", ctypes.c_int64), ("w", _PA), ("w_stride", _IA), ("b", _PA),
                        ("b_stride", _IA), ("y", _P), ("jac", _P), ("save_h", _P), ("save_z", _P)]


class JvpBwdArgs(ctypes.Structure):
    _fields_ = _HEAD + [("act", ctypes.c_int), ("w0_first", ctypes.c_float), ("w0_hidden", ctypes.c_float),
                        ("dy", _P), ("djac", _P), ("save_h", _P), ("save_z", _P), ("w", _PA), ("w_stride", _IA),
                        ("dz", _PA), ("dx", _P)]


class TcArgs(ctypes.Structure):
    _fields_ = _HEAD + [("act", ctypes.c_int), ("out_act", ctypes.c_int), ("precision", ctypes.c_int),
                        ("w0_first", ctypes.c_float), ("w0_hidden", ctypes.c_float), ("x", _P),
                        ("x_stride", ctypes.c_int64), ("w0t", _P), ("w0t_stride", ctypes.c_int64), ("w", _PA),
                        ("w_stride", _IA), ("b", _PA), ("b_stride", _IA), ("y", _P), ("save_h", _P), ("save_z", _P)]


class TcBwdArgs(ctypes.Structure):
    _fields_ = _HEAD + [("act", ctypes.c_int), ("out_act", ctypes.c_int), ("precision", ctypes.c_int),
                        ("w0_first", ctypes.c_float), ("w0_hidden", ctypes.c_float), ("dy", _P), ("y", _P),
                        ("save_h", _P), ("save_z", _P), ("w0", _P), ("w0_stride", ctypes.c_int64), ("w", _PA),
                        ("w_stride", _IA), ("dz", _PA), ("dx", _P), ("db", _PA), ("db_stride", _IA)]


class HgLevel(ctypes.Structure):
    _fields_ = [("scale", ctypes.c_float), ("res", ctypes.c_uint32), ("size", ctypes.c_uint32),
                ("hashed", ctypes.c_uint32), ("offset", ctypes.c_int64)]


class HgGeom(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in ("n_dims", "n_feat", "n_levels", "interpolation")] + [
        (n, ctypes.c_int64) for n in ("n_inst", "n_per", "x_stride", "table_stride")] + [("levels", HgLevel * 32)]


def _hg_geom(dims, scales, ints) -> HgGeom:
    """bindings.cpp's hashgrid_geom: dims = (n_dims, n_feat, interpolation, n_inst, n_per,
    x_stride, table_stride); per level scales[l] and ints[4l:4l+4] = (res, size, hashed, offset)."""
    g = HgGeom()
    g.n_dims, g.n_feat, g.interpolation, g.n_inst, g.n_per, g.x_stride, g.table_stride = dims
    g.n_levels = len(scales)
    for lvl, scale in enumerate(scales):
        res, size, hashed, offset = ints[4 * lvl:4 * lvl + 4]
        g.levels[lvl] = HgLevel(scale, res, size, hashed, offset)
    return g


def _ptr(t: torch.Tensor) -> int | None:
    """A tensor's data pointer, or null for an empty one (bindings.cpp's convention)."""
    if not t.numel():
        return None
    assert t.is_contiguous() and t.device.type == "cpu", "emulated kernels take contiguous CPU tensors"
    return t.data_ptr()


def _stride(t: torch.Tensor, unbatched_dim: int) -> int:
    return t.numel() // t.shape[0] if t.dim() > unbatched_dim else 0


def _fill(args, ints: dict, **ptrs) -> None:
    for k, v in ints.items():
        setattr(args, k, v)
    for k, v in ptrs.items():
        setattr(args, k, _ptr(v))


def _layers(args, name: str, tensors, stride_name: str | None = None, unbatched_dim: int = 2) -> None:
    for i, t in enumerate(tensors):
        getattr(args, name)[i] = _ptr(t)
        if stride_name:
            getattr(args, stride_name)[i] = _stride(t, unbatched_dim) if t.numel() else 0


def _call(fn, args, *ptrs) -> None:
    err = fn(ctypes.byref(args), *ptrs, None)
    if err != 0:
        raise RuntimeError(f"emulated kernel launch failed: error {err}")


class EmuExt:
    """The torch extension's interface (bindings.cpp) over the emulated kernels."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        for name in ("inr_mlp_forward", "inr_mlp_backward", "inr_mlp_jvp_forward", "inr_mlp_jvp_backward",
                     "inr_mlp_tc_forward", "inr_mlp_tc_backward", "inr_hashgrid_forward", "inr_hashgrid_backward",
                     "inr_hashgrid_backward_backward"):
            getattr(lib, name).restype = ctypes.c_int

    def din_pad(self, d_in: int) -> int:
        return self.lib.inr_mlp_din_pad(d_in)

    def dout_pad(self, d_out: int) -> int:
        return self.lib.inr_mlp_dout_pad(d_out)

    def mlp_forward(self, x, x_stride, w, b, y, save_h, save_z, B, N, d_in, d_out, width, act, out_act, w0_first,
                    w0_hidden):
        a = FwdArgs()
        _fill(a, dict(B=B, N=N, d_in=d_in, d_out=d_out, width=width, n_layers=len(w), act=act, out_act=out_act,
                      w0_first=w0_first, w0_hidden=w0_hidden, x_stride=x_stride), x=x, y=y, save_h=save_h,
              save_z=save_z)
        _layers(a, "w", w, "w_stride", 2)
        _layers(a, "b", b, "b_stride", 1)
        _call(self.lib.inr_mlp_forward, a)

    def mlp_backward(self, dy, y, save_h, save_z, w, dz, dx, db, B, N, d_in, d_out, width, act, out_act, w0_first,
                     w0_hidden):
        a = BwdArgs()
        _fill(a, dict(B=B, N=N, d_in=d_in, d_out=d_out, width=width, n_layers=len(w), act=act, out_act=out_act,
                      w0_first=w0_first, w0_hidden=w0_hidden), dy=dy, y=y, save_h=save_h, save_z=save_z, dx=dx)
        _layers(a, "w", w, "w_stride", 2)
        _layers(a, "dz", dz)
        _layers(a, "db", db, "db_stride", 1)
        _call(self.lib.inr_mlp_backward, a)

    def mlp_jvp_forward(self, x, x_stride, w, b, y, jac, save_h, save_z, B, N, d_in, d_out, width, act, w0_first,
                        w0_hidden):
        a = JvpArgs()
        _fill(a, dict(B=B, N=N, d_in=d_in, d_out=d_out, width=width, n_layers=len(w), act=act, w0_first=w0_first,
                      w0_hidden=w0_hidden, x_stride=x_stride), x=x, y=y, jac=jac, save_h=save_h, save_z=save_z)
        _layers(a, "w", w, "w_stride", 2)
        _layers(a, "b", b, "b_stride", 1)
        _call(self.lib.inr_mlp_jvp_forward, a)

    def mlp_jvp_backward(self, dy, djac, save_h, save_z, w, dz, dx, B, N, d_in, d_out, width, act, w0_first,
                         w0_hidden):
        a = JvpBwdArgs()
        _fill(a, dict(B=B, N=N, d_in=d_in, d_out=d_out, width=width, n_layers=len(w), act=act, w0_first=w0_first,
                      w0_hidden=w0_hidden), dy=dy, djac=djac, save_h=save_h, save_z=save_z, dx=dx)
        _layers(a, "w", w, "w_stride", 2)
        _layers(a, "dz", dz)
        _call(self.lib.inr_mlp_jvp_backward, a)

    def mlp_tc_forward(self, x, x_stride, w0t, w, b, y, save_h, save_z, B, N, d_in, d_out, width, act, out_act,
                       precision, w0_first, w0_hidden):
        a = TcArgs()
        _fill(a, dict(B=B, N=N, d_in=d_in, d_out=d_out, width=width, n_layers=len(w), act=act, out_act=out_act,
                      precision=precision, w0_first=w0_first, w0_hidden=w0_hidden, x_stride=x_stride,
                      w0t_stride=_stride(w0t, 2)), x=x, w0t=w0t, y=y, save_h=save_h, save_z=save_z)
        _layers(a, "w", w, "w_stride", 2)
        _layers(a, "b", b, "b_stride", 1)
        _call(self.lib.inr_mlp_tc_forward, a)

    def mlp_tc_backward(self, dy, y, save_h, save_z, w0, w, dz, dx, db, B, N, d_in, d_out, width, act, out_act,
                        precision, w0_first, w0_hidden):
        a = TcBwdArgs()
        _fill(a, dict(B=B, N=N, d_in=d_in, d_out=d_out, width=width, n_layers=len(w), act=act, out_act=out_act,
                      precision=precision, w0_first=w0_first, w0_hidden=w0_hidden, w0_stride=_stride(w0, 2)),
              dy=dy, y=y, save_h=save_h, save_z=save_z, w0=w0, dx=dx)
        _layers(a, "w", w, "w_stride", 2)
        _layers(a, "dz", dz)
        _layers(a, "db", db, "db_stride", 1)
        _call(self.lib.inr_mlp_tc_backward, a)

    def hashgrid_forward(self, x, table, out, dims, scales, ints):
        _call(self.lib.inr_hashgrid_forward, _hg_geom(dims, scales, ints), _P(_ptr(x)), _P(_ptr(table)), _P(_ptr(out)))

    def hashgrid_backward(self, x, table, dout, dtable, dx, dims, scales, ints):
        _call(self.lib.inr_hashgrid_backward, _hg_geom(dims, scales, ints),
              *(_P(_ptr(t)) for t in (x, table, dout, dtable, dx)))

    def hashgrid_backward_backward(self, x, table, dout, ggx, ggtable, d_dout, dtable, dx, dims, scales, ints):
        _call(self.lib.inr_hashgrid_backward_backward, _hg_geom(dims, scales, ints),
              *(_P(_ptr(t)) for t in (x, table, dout, ggx, ggtable, d_dout, dtable, dx)))


def ext() -> EmuExt | None:
    lib = library()
    return EmuExt(lib) if lib is not None else None
