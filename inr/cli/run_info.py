"""What `inr info` prints of a run: its kind, parameters per part, data, training settings, steps,
final metrics and files; each run kind adds its own sections."""
from __future__ import annotations

from inr.hyper.hcinr import PARTS as HCINR_PARTS


def params_by_part(state: dict) -> dict[str, int]:
    """Parameter count per top-level part of the model (an HC-INR field: grids, hypernetworks,
    compact; a hash field: grid, net; a NeRF with the HC-INR encoding: encoding.grids, ...), in
    the order they are stored."""
    parts: dict[str, int] = {}
    for name, tensor in state.items():
        part = name.split(".", 1)[0]
        if name.startswith("encoding.") and name.split(".")[1] in HCINR_PARTS:  # a NeRF's HC-INR encoding
            part = ".".join(name.split(".")[:2])
        parts[part] = parts.get(part, 0) + tensor.numel()
    return parts


def run_info(run, config: dict, **sections) -> dict:
    """What `inr info` prints of any run: its kind, `sections`, parameters (per part), data, training
    settings, steps, final metrics and files."""
    state = run.load_model_state()
    return {
        "run": str(run.path), "kind": config["kind"], "version": config["version"], **sections,
        "params": sum(t.numel() for t in state.values()), "params_by_part": params_by_part(state),
        "data": config.get("data"), "train": config.get("fit", {}).get("train"),
        **run_progress(run), "files": sorted(p.name for p in run.path.iterdir()),
    }


def run_progress(run) -> dict:
    """{"steps", "seconds", "final"} of a run's metrics.jsonl (its final row's, when there is one)."""
    rows = list(run.metrics())
    final = next((r for r in reversed(rows) if r.get("final")), None)
    return {"steps": final["step"] if final else (rows[-1]["step"] if rows else 0),
            "seconds": final["time"] if final else None, "final": final["eval"] if final else None}
