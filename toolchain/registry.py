"""One registry class: names -> implementations. Duplicates and unknown names raise."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from toolchain.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of implementations, filled by decorator.

    >>> losses = Registry("loss")
    >>> @losses.register("l1")
    ... def l1(a, b): return abs(a - b)
    >>> losses.get("l1")(3, 5)
    2
    >>> losses.get("l3")
    Traceback (most recent call last):
    ...
    toolchain.errors.RegistryError: unknown loss 'l3'; known: l1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise RegistryError(f"duplicate {self.kind} {name!r}")
        self._items[name] = obj

    def get(self, name: str) -> T:
        if not isinstance(name, str):  # e.g. a list from a config file: unhashable, and never a name
            raise RegistryError(f"a {self.kind} name must be text, not {type(name).__name__} {str(name)[:60]}; "
                                f"known: {', '.join(self.names()) or '(none)'}")
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or '(none)'}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
