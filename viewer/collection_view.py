"""Views of collections (`inr fit collection images|sdf`): one member at a time, shown as the image
or SDF view shows a fitted field, with a slider that picks the member.

A member is its own plain field (`MemberField`): the collection's hypernetwork conditioned on that
member's latent (or its encoder input), so the image and SDF views render it unchanged."""
from __future__ import annotations

import torch
from torch import nn

from inr.errors import InputError

from .base import to_uint8
from .image_view import ImageView
from .sdf_view import SDFView
from .server import background
from .source import LiveSource, frozen_copy


class MemberField(nn.Module):
    """One member of a collection as a plain field x [n, d] -> [n, C]: the hypernetwork conditioned
    on that member (its index, or its encoder inputs, kept as buffers so `.to()` moves them)."""

    def __init__(self, model: nn.Module, condition):
        super().__init__()
        self.model = model
        parts = condition if isinstance(condition, tuple) else (condition,)
        self.n_parts, self.is_tuple = len(parts), isinstance(condition, tuple)
        for i, part in enumerate(parts):
            self.register_buffer(f"cond{i}", part.detach().clone(), persistent=False)

    def condition(self):
        parts = tuple(getattr(self, f"cond{i}") for i in range(self.n_parts))
        return parts if self.is_tuple else parts[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.unsqueeze(0), self.condition())[0]


class MemberSwitching:
    """What both collection views add to their base view: the member slider and the swap of the
    rendered field. Subclasses give `condition(index)` and may extend `member_changed()`."""

    signal = ""

    def __init__(self, server, run, config: dict, live=None):
        signal = (config.get("data") or {}).get("signal")
        if signal != self.signal:
            raise InputError(f"{run.path}: a collection of {signal!r} signals, not {self.signal}")
        self.member, self.task = 0, live
        super().__init__(server, run, config, live)

    def condition(self, index: int):
        return torch.tensor([index])

    def live_module(self, task) -> nn.Module:
        return MemberField(task.model, self.condition(self.member))

    def run_module(self, model_state: dict, task_state: dict | None) -> nn.Module:
        from inr.train.collection import rebuild_model

        model = rebuild_model(self.config["model"])
        try:
            model.load_state_dict(model_state)
        except RuntimeError as e:
            raise InputError(f"{self.run.path}: cannot rebuild its hypernetwork ({str(e).splitlines()[0]})") from None
        model = frozen_copy(model)
        self.prepare(model)
        return MemberField(model, self.condition(self.member))

    def prepare(self, model: nn.Module) -> None:
        """Read what conditioning members needs (once, before the first member is built)."""

    def add_member_gui(self) -> None:
        names = self.config["data"]["members"]
        with self.server.gui.add_folder("Collection"):
            self.slider = self.server.gui.add_slider("Member", min=0, max=max(1, len(names) - 1), step=1,
                                                     initial_value=0, disabled=len(names) < 2)
            self.member_name = self.server.gui.add_markdown(self._label(0))
        self.slider.on_update(lambda _: background(self.show_member, int(self.slider.value)))

    def _label(self, index: int) -> str:
        names = self.config["data"]["members"]
        return f"**{names[index]}** ({index + 1} of {len(names)})"

    def show_member(self, index: int) -> None:
        """Render member `index` from now on (what the slider does)."""
        if index == self.member or not 0 <= index < len(self.config["data"]["members"]):
            return
        self.member = index
        self.member_name.content = self._label(index)
        self.member_changed()
        if isinstance(self.source, LiveSource):
            self.source.live = MemberField(self.live.model, self.condition(index))
            self.source.pull(force=True)
        else:
            self.source.replace(MemberField(self.source.module.model, self.condition(index)).to(self.device))

    def member_changed(self) -> None:
        pass


class ImageCollectionView(MemberSwitching, ImageView):
    signal = "images"

    def prepare(self, model: nn.Module) -> None:
        from inr.cli.collection_commands import image_collection_task

        if self.task is None:  # the member images and conditioning inputs
            self.task = image_collection_task(self.config, frozen_copy(model), torch.device("cpu"), str(self.run.path))

    def condition(self, index: int):
        return self.task.eval_conditions(torch.tensor([index]))

    def load_target(self) -> torch.Tensor:
        return self.task.images[self.member].cpu()

    def setup(self) -> None:
        super().setup()
        self.add_member_gui()

    def member_changed(self) -> None:
        self.target = self.load_target()
        self._target = self._panel("/target", to_uint8(self.target), 1, "ground truth")

    def weights_changed(self) -> None:
        self.update_error()  # a new member (or new weights): its own PSNR and error map now
        self.redraw()


class SDFCollectionView(MemberSwitching, SDFView):
    signal = "sdf"

    def setup(self) -> None:
        super().setup()
        self.add_member_gui()


def collection_view(server, run, config: dict, live=None):
    """The view of a collection run, by the kind of its signals."""
    signal = (config.get("data") or {}).get("signal")
    views = {"images": ImageCollectionView, "sdf": SDFCollectionView}
    if signal not in views:
        raise InputError(f"{run.path}: no view for collections of {signal!r}")
    return views[signal](server, run, config, live)
