"""Extension points found by entry point: one shape for every place a user extends sifthinker.

A benchmark, an inference backend, a builder source, a reward or a judge is one module plus one
line in its package's metadata::

    [project.entry-points."sifmodel.backends"]
    mine = "my_package.backend:MyBackend"

The built-ins register the same way (``pyproject.toml``), so nothing in the core names them:
a :class:`Registry` lists what is installed and loads one by name, checking that the object
is what its group expects. (The pattern of ``importlib.metadata`` plugins, as pytest and
inspect_ai use it.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

Loaded = TypeVar("Loaded")


def registered_names(group: str) -> list[str]:
    """The names registered under ``group``, sorted, nothing imported (for validating a name
    where importing what it names would be a layer too high)."""
    return sorted({entry.name for entry in entry_points(group=group)})


class UnknownPlugin(KeyError):
    """A name no installed package registers in this group; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError's str() would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class Registry(Generic[Loaded]):
    """The entry points of ``group``: each ``name = "module:object"``, where the object must pass
    ``accepts`` (described by ``expected`` in the error when it does not)."""

    group: str
    noun: str  # "backend", "source", ...: what one entry is called in messages
    accepts: Callable[[Any], bool]
    expected: str

    def entries(self) -> dict[str, EntryPoint]:
        found: dict[str, EntryPoint] = {}
        for entry in entry_points(group=self.group):
            if entry.name in found and found[entry.name].value != entry.value:
                raise ValueError(
                    f"{self.noun} {entry.name!r} is registered twice ({found[entry.name].value} and {entry.value})"
                )
            found[entry.name] = entry
        if not found:
            raise RuntimeError(
                f"no {self.noun} is registered under the {self.group!r} entry point group: "
                "install sifthinker (pip install -e .) so that its built-ins register"
            )
        return found

    def names(self) -> list[str]:
        """The registered names, sorted (nothing is imported)."""
        return sorted(self.entries())

    def load(self, name: str) -> Loaded:
        """The object registered as ``name``, imported on first use."""
        entries = self.entries()
        if name not in entries:
            raise UnknownPlugin(f"unknown {self.noun} {name!r}; known: {', '.join(sorted(entries))}")
        loaded = entries[name].load()
        if not self.accepts(loaded):
            raise TypeError(f"entry point {name} = {entries[name].value} ({self.group}) is not {self.expected}")
        return loaded  # type: ignore[no-any-return]

    def listing(self, describe: Callable[[str], str] = str, fallback: str = "") -> str:
        """The installed names for help text (each through ``describe``); ``fallback`` when the
        group cannot be read (a broken plug-in leaves the help plain, not the command unusable:
        using it names the problem)."""
        try:
            return ", ".join(describe(name) for name in self.names())
        except Exception:
            return fallback

    def load_all(self) -> dict[str, Loaded]:
        return {name: self.load(name) for name in self.names()}


def subclass_of(base: type) -> Callable[[Any], bool]:
    """``accepts`` for groups whose entries are classes deriving from ``base``."""
    return lambda loaded: isinstance(loaded, type) and issubclass(loaded, base)
