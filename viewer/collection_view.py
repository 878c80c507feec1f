"""The view of an image collection (`inr fit collection images`): one member at a time, shown as
the image view shows a fitted image (field at screen resolution, ground truth, error map, PSNR),
with a slider that picks the member."""
from __future__ import annotations

import torch
from torch import nn

from inr.errors import InputError

from .base import to_uint8
from .image_view import ImageView
from .server import background
from .source import LiveSource, frozen_copy


class MemberField(nn.Module):
    """One member of a collection as a plain field: x [n, 2] -> [n, C], conditioning the collection's
    hypernetwork on that member (its latent, or its encoder input kept as buffers)."""

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


class CollectionView(ImageView):
    def __init__(self, server, run, config: dict, live=None):
        signal = (config.get("data") or {}).get("signal")
        if signal != "images":
            raise InputError(f"{run.path}: the viewer shows image collections; this one holds {signal!r}")
        self.member, self.task = 0, live
        super().__init__(server, run, config, live)

    def _member_field(self, model: nn.Module) -> MemberField:
        return MemberField(model, self.task.eval_conditions(torch.tensor([self.member])))

    def live_module(self, task) -> nn.Module:
        return self._member_field(task.model)

    def run_module(self, model_state: dict, task_state: dict | None) -> nn.Module:
        from inr.cli.collection_commands import image_collection_task
        from inr.train.collection import rebuild_model

        model = rebuild_model(self.config["model"])
        model.load_state_dict(model_state)
        model = frozen_copy(model)
        if self.task is None:  # the member images and conditioning inputs, read once
            self.task = image_collection_task(self.config, frozen_copy(model), torch.device("cpu"), str(self.run.path))
        return self._member_field(model)

    def load_target(self) -> torch.Tensor:
        return self.task.images[self.member].cpu()

    def setup(self) -> None:
        super().setup()
        names = self.config["data"]["members"]
        gui = self.server.gui
        with gui.add_folder("Collection"):
            self.slider = gui.add_slider("Member", min=0, max=max(1, len(names) - 1), step=1, initial_value=0,
                                         disabled=len(names) < 2)
            self.member_name = gui.add_markdown(f"**{names[0]}** (1 of {len(names)})")
        self.slider.on_update(lambda _: background(self.show_member, int(self.slider.value)))

    def show_member(self, index: int) -> None:
        """Switch the field, the ground truth and the error map to member `index`."""
        names = self.config["data"]["members"]
        if index == self.member or not 0 <= index < len(names):
            return
        self.member = index
        self.member_name.content = f"**{names[index]}** ({index + 1} of {len(names)})"
        self.target = self.load_target()
        self._target = self._panel("/target", to_uint8(self.target), 1, "ground truth")
        if isinstance(self.source, LiveSource):
            self.source.live = self._member_field(self.live.model)
            self.source.pull(force=True)
        else:
            model = self.source.module.model
            self.source.replace(self._member_field(model).to(self.device))
        self.update_error()
        self.redraw()
