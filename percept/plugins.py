"""The plugin API of the reading service (docs/reading.md, docs/architecture.md) and plugin discovery.

A plugin is a class in a ``plugins/*_plugin.py`` file, decorated with
:func:`register_plugin`, with ``name``, ``languages``, ``description`` and a static
``process_audio(filename) -> AudioProcessingResult`` or
``process_image(filename) -> ImageProcessingResult``. Files written for the original system
(``from core.plugins import ...``) load unchanged: discovery aliases ``core.plugins`` to this
module while it imports them.

Optional hooks Percept understands:

* ``load()`` (static): heavy initialisation, called once per replica before the first call,
  so that importing a plugin file stays cheap. It may raise
  :class:`percept.errors.WeightsMissing` — the plugin is then listed as unavailable.
* ``process_audio_batch(filenames)`` / ``process_image_batch(filenames)``: batched variants.

Each loaded plugin is served by its own ``PluginDeployment`` replica set.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

logger = logging.getLogger(__name__)


class Point(BaseModel):
    x: int
    y: int

    @field_validator("x", "y", mode="before")
    @classmethod
    def _round(cls, value: Any) -> int:
        return int(round(float(value)))


class Rectangle(BaseModel):
    left_top: Point
    right_top: Point
    right_bottom: Point
    left_bottom: Point


class ImageTextBox(BaseModel):
    text: str
    coordinates: Rectangle
    confidence: float | None = None


class ImageProcessingResult(BaseModel):
    text: str
    boxes: list[ImageTextBox] = Field(default_factory=list)


class WordTiming(BaseModel):
    """One recognised word with its time in the recording (seconds)."""

    word: str
    start: float
    end: float
    probability: float | None = None


class AudioChunk(BaseModel):
    start: float
    end: float
    text: str
    words: list[WordTiming] = Field(default_factory=list)


class AudioProcessingResult(BaseModel):
    text: str
    segments: list[AudioChunk] = Field(default_factory=list)


PluginKind = Literal["audio", "image"]


class PluginInfo(BaseModel):
    """What the model-list endpoints show of a plugin."""

    name: str
    kind: PluginKind
    languages: list[str]
    description: str
    file: str
    class_name: str


class PluginError(BaseModel):
    file: str
    error: str


class InvalidPlugin(ValueError):
    """A class registered without the required attributes."""


_registering: list[type] | None = None
_lock = threading.Lock()


def plugin_kind(cls: type) -> PluginKind:
    has_audio = callable(getattr(cls, "process_audio", None))
    has_image = callable(getattr(cls, "process_image", None))
    if has_audio == has_image:
        raise InvalidPlugin(
            f"{cls.__name__} must define exactly one of process_audio(filename) or process_image(filename)"
        )
    return "audio" if has_audio else "image"


def register_plugin(cls: type) -> type:
    """Class decorator: check the plugin's shape and record it for discovery."""
    for attr, kind in (("name", str), ("description", str), ("languages", list)):
        value = getattr(cls, attr, None)
        if not isinstance(value, kind) or (attr == "name" and not value):
            raise InvalidPlugin(f"{cls.__name__}.{attr} must be a non-empty {kind.__name__}")
    plugin_kind(cls)
    if _registering is not None:
        _registering.append(cls)
    return cls


@dataclass
class DiscoveredPlugins:
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)
    classes: dict[str, type] = field(default_factory=dict)


def _core_alias() -> types.ModuleType:
    """A ``core.plugins`` module for plugins written against the original system."""
    core = sys.modules.get("core") or types.ModuleType("core")
    core.plugins = sys.modules[__name__]  # type: ignore[attr-defined]
    sys.modules.setdefault("core", core)
    sys.modules.setdefault("core.plugins", sys.modules[__name__])
    return core


def import_plugin_file(path: Path) -> list[type]:
    """Import one plugin file and return the classes it registered."""
    global _registering
    with _lock:
        _core_alias()
        _registering = []
        try:
            module_name = f"percept_plugins.{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(module_name, None)
                raise
            return list(_registering)
        finally:
            _registering = None


def discover_plugins(directory: str | Path) -> DiscoveredPlugins:
    """Import every ``*_plugin.py`` in ``directory``; a broken file is reported and skipped."""
    found = DiscoveredPlugins()
    root = Path(directory)
    if not root.is_dir():
        logger.warning("plugins directory %s does not exist", root)
        return found
    for path in sorted(root.glob("*_plugin.py")):
        try:
            classes = import_plugin_file(path)
        except Exception as exc:  # a plugin must never take the app down
            logger.error("plugin file %s failed to load: %s", path.name, exc)
            found.errors.append(PluginError(file=path.name, error=f"{type(exc).__name__}: {exc}"))
            continue
        if not classes:
            # An optional plugin whose library is not installed (e.g. the [card] extra) says so
            # in a module-level ``SKIPPED`` and registers nothing: skipped, not an error.
            skipped = getattr(sys.modules.get(f"percept_plugins.{path.stem}"), "SKIPPED", None)
            if skipped:
                logger.info("plugin file %s skipped: %s", path.name, skipped)
                continue
            found.errors.append(PluginError(file=path.name, error="no class decorated with @register_plugin"))
        for cls in classes:
            name = str(getattr(cls, "name"))  # noqa: B009 - checked by register_plugin
            if name in found.plugins:
                found.errors.append(PluginError(file=path.name, error=f"duplicate plugin name {name!r}"))
                continue
            found.plugins[name] = PluginInfo(
                name=name,
                kind=plugin_kind(cls),
                languages=[str(x) for x in getattr(cls, "languages")],  # noqa: B009
                description=str(getattr(cls, "description")),  # noqa: B009
                file=str(path),
                class_name=cls.__name__,
            )
            found.classes[name] = cls
    return found


def load_plugin_class(file: str | Path, class_name: str) -> type:
    """Import a plugin file (in a replica) and return the named class."""
    for cls in import_plugin_file(Path(file)):
        if cls.__name__ == class_name:
            return cls
    raise InvalidPlugin(f"{class_name} is not registered in {file}")
