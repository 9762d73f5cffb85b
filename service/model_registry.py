"""Every model the service serves, by name: one :class:`ModelSlot` each.

A model's served name is its file stem: ``default.onnx`` is ``default``, ``interaction.onnx``
is ``interaction`` (stems are unique in a folder). The files are ``settings.model`` alone, or
every ``*.onnx`` of ``settings.models`` (with neither: the checkout's ``models/``), each with
its card beside it.

The default model, the one of requests that name no model: ``settings.default_model`` when it
is set (it must be served), else ``default`` when it is served, else the only model. Several
models, none named ``default`` and no setting is a start-up error rather than a guess.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from service.runtime import ModelRuntime, ModelSlot
from service.settings import ServiceSettings
from skeleton.card import CardError, load_card

log = logging.getLogger(__name__)

#: What a served name may look like: one URL path segment, no quoting needed.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
DEFAULT_NAME = "default"


class ModelFolderError(ValueError):
    """Nothing servable where the settings point, or a model there is not; names the file."""


class UnknownModelError(ValueError):
    """A request named a model this server does not serve; the message lists those it does."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name, self.known = name, tuple(known)
        served = ", ".join(repr(n) for n in self.known)
        super().__init__(f"no model {name!r}; this server serves {served}")


@dataclass(frozen=True)
class ModelPlan:
    """What the settings ask to serve, checked (every card read, its sha256 compared)."""

    folder: Path  # the only folder admin reloads may read from
    files: dict[str, Path]  # served name -> ONNX file, sorted by name
    default_name: str


def plan_models(settings: ServiceSettings) -> ModelPlan:
    """The models ``settings`` serve; :class:`ModelFolderError` says what is wrong, and where."""
    folder = settings.models_folder
    if settings.model is not None:
        path = settings.model
        if not path.is_file():
            raise ModelFolderError(
                f"no model at {path}: pass --model FILE or --models DIR (or set MASKSEM_MODEL "
                "or MASKSEM_MODELS), or export one with "
                "`masksem export --checkpoint ... --out models/default.onnx`"
            )
        files = {checked_name(path): path}
    else:
        files = find_models(folder)
    return ModelPlan(folder, files, pick_default(files, settings.default_model, folder))


def find_models(folder: Path) -> dict[str, Path]:
    """Every ``*.onnx`` of ``folder`` by served name, each with a valid card."""
    if not folder.is_dir():
        raise ModelFolderError(
            f"no model folder at {folder}: pass --models DIR or --model FILE "
            "(or set MASKSEM_MODELS or MASKSEM_MODEL)"
        )
    paths = sorted(p for p in folder.glob("*.onnx") if p.is_file())
    if not paths:
        raise ModelFolderError(
            f"no model in {folder}: it holds no *.onnx file (each with its .card.json beside it)"
        )
    return {checked_name(path): path for path in paths}


def checked_name(path: Path) -> str:
    """The served name of ``path`` once its name and its card are known to be good."""
    name = path.stem
    if not MODEL_NAME.fullmatch(name):
        raise ModelFolderError(
            f"refusing to serve {path}: its name {name!r} (the file stem) must start with a "
            "letter or digit and hold only letters, digits, '.', '_' and '-'"
        )
    try:
        load_card(path)  # the check loading makes, before anything starts
    except CardError as err:
        raise ModelFolderError(f"refusing to serve {path}: {err}") from err
    return name


def pick_default(files: Mapping[str, Path], wanted: str | None, folder: Path) -> str:
    """The default model's name by the rule of this module's docstring."""
    names = sorted(files)
    if wanted is not None:
        if wanted not in files:
            served = ", ".join(repr(n) for n in names)
            raise ModelFolderError(
                f"MASKSEM_DEFAULT_MODEL is {wanted!r}, which is not served; served: {served}"
            )
        return wanted
    if DEFAULT_NAME in files:
        return DEFAULT_NAME
    if len(names) == 1:
        return names[0]
    raise ModelFolderError(
        f"{folder} holds several models ({', '.join(names)}) and none is named "
        f"{DEFAULT_NAME!r}: set MASKSEM_DEFAULT_MODEL to the one requests naming none should use"
    )


class ModelRegistry:
    """The served models by name; each one loads, serves and reloads on its own."""

    def __init__(self, slots: Mapping[str, ModelSlot], *, default_name: str, folder: Path) -> None:
        if default_name not in slots:
            raise UnknownModelError(default_name, sorted(slots))
        self.slots: dict[str, ModelSlot] = dict(sorted(slots.items()))
        self.default_name = default_name
        self.folder = folder

    @property
    def names(self) -> list[str]:
        return list(self.slots)

    @property
    def default(self) -> ModelSlot:
        return self.slots[self.default_name]

    def get(self, name: str) -> ModelSlot:
        try:
            return self.slots[name]
        except KeyError:
            raise UnknownModelError(name, self.names) from None

    def resolve(self, name: str | None) -> ModelSlot:
        """The model ``name`` (None: the default model)."""
        return self.default if name is None else self.get(name)

    @property
    def ready(self) -> bool:
        """Every model loaded and warmed up."""
        return all(slot.ready for slot in self.slots.values())

    async def start(self) -> None:
        """Load every model (at once, each on a worker thread); if one fails, close the rest
        and raise its error."""
        outcomes = await asyncio.gather(
            *(slot.start() for slot in self.slots.values()), return_exceptions=True
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            await self.close()
            raise failures[0]

    async def reload_all(self) -> dict[str, ModelRuntime | Exception]:
        """Reload every model from its file, one after the other; a model that fails to load
        keeps serving its previous version and does not stop the others."""
        outcomes: dict[str, ModelRuntime | Exception] = {}
        for name, slot in self.slots.items():
            try:
                outcomes[name] = await slot.reload()
            except Exception as err:  # noqa: BLE001 - reported per model by the caller
                outcomes[name] = err
        return outcomes

    async def close(self) -> None:
        for slot in self.slots.values():
            await slot.close()
