"""Camera clip -> model window: layout and units mapped by ``skeleton.layouts.convert``, then
``skeleton.clip.inference_window``; the one path of REST, streams and offline evaluation."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from skeleton.card import ModelCard
from skeleton.clip import check_clip, inference_window
from skeleton.layouts import LayoutError, can_map, convert, get_layout


def model_window(
    clip: NDArray[np.floating],
    layout: str,
    card: ModelCard,
    *,
    units_scale: float = 1.0,
    where: str = "clip",
) -> NDArray[np.float32]:
    """``(persons, T, V, 3)`` in ``layout`` -> the model's ``(window.persons, frames, V', 3)``.

    Raises ``ClipError`` (shape, NaN/inf with person, frame and joint, all-zero) or
    ``LayoutError`` (unknown layout, or one the model's layout cannot be computed from).
    """
    source = get_layout(layout)
    checked = check_clip(clip, where=where)
    if checked.shape[2] != source.num_joints:
        raise LayoutError(
            f"{where}: layout {layout} has {source.num_joints} joints, got {checked.shape[2]}"
        )
    if not can_map(layout, card.layout):
        raise LayoutError(
            f"{where}: camera layout {layout!r} cannot be mapped to the model's layout "
            f"{card.layout!r} (a joint of the model has no counterpart in it)"
        )
    mapped = convert(checked, layout, card.layout, scale=units_scale)
    return inference_window(mapped, card.window, where=where)
