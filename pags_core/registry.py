"""A small name -> object registry, looked up case-insensitively with errors that list the valid names."""
from __future__ import annotations

from typing import Callable, Dict, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


def check_choice(value: str, valid: Iterable[str], what: str) -> str:
    """``value`` in lower case when it is one of ``valid`` (lower-case names) in any case; otherwise a ``ValueError``
    naming ``what``, the value and the valid choices."""
    valid = tuple(valid)
    if not isinstance(value, str) or value.lower() not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid choices: {', '.join(valid)}")
    return value.lower()


class Registry(Generic[T]):
    """Maps lower-case names to objects (usually factories).

    >>> r = Registry("model")
    >>> _ = r.register("tiny")(lambda: 1)
    >>> r["TINY"]()
    1
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, T] = {}

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""
        key = name.lower()

        def _add(o: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[key] = o
            return o

        return _add(obj) if obj is not None else _add

    def __getitem__(self, name: str) -> T:
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}: {name!r}")
        try:
            return self._items[name.lower()]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
