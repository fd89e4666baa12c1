"""Look-up by name for the report classes (gradient check, blame, doctor, self-check).

Each report is a sequence of rows that carry a ``name``; :class:`NamedRows` gives them
one way to be indexed by position or by name, iterated, searched and listed.
"""
from __future__ import annotations

__all__ = ["NamedRows"]


class NamedRows:
    """Mixin: a sequence of rows with a ``.name``, indexed by position or by name.

    A subclass sets ``_rows_attr`` (the attribute holding its list of rows) and ``_noun``
    (what a row is, for the KeyError message: ``"parameter"``, ``"finding"``, ...).

    Example::

        report["0.weight"]           # the row named "0.weight" (KeyError naming the others)
        report[0], len(report)       # by position, as a list
        "0.weight" in report         # True
        report.names(), report.get("nope")   # ['0.weight', ...], None
    """

    _rows_attr = "rows"
    _noun = "row"

    def _named_rows(self) -> list:
        return getattr(self, self._rows_attr)

    def __len__(self) -> int:
        return len(self._named_rows())

    def __iter__(self):
        return iter(self._named_rows())

    def __getitem__(self, key):
        if isinstance(key, str):
            for row in self._named_rows():
                if row.name == key:
                    return row
            raise KeyError(f"{type(self).__name__}: no {self._noun} named {key!r}; "
                           f"the names are {', '.join(self.names()) or 'none'}")
        return self._named_rows()[key]

    def __contains__(self, item) -> bool:
        if isinstance(item, str):
            return any(row.name == item for row in self._named_rows())
        return item in self._named_rows()

    def names(self) -> list:
        """The rows' names, in order."""
        return [row.name for row in self._named_rows()]

    def get(self, name: str, default=None):
        """The row called ``name``, or ``default``."""
        return next((row for row in self._named_rows() if row.name == name), default)
