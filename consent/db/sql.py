"""Named SQL blocks: `.sql` files with `-- name: <identifier>` headers (the aiosql convention)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

__all__ = ["SqlFile"]

_NAME: Final = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class SqlFile:
    """The statements of one `.sql` file, by name. Loaded once, at import of the module using it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        text = path.read_text(encoding="utf-8")
        self._statements: dict[str, str] = {}
        matches = list(_NAME.finditer(text))
        if not matches:
            raise ValueError(f"{path.name}: no '-- name:' blocks")
        for match, following in zip(matches, [*matches[1:], None], strict=True):
            end = following.start() if following else len(text)
            body = text[match.end() : end].strip()
            name = match.group(1)
            if name in self._statements:
                raise ValueError(f"{path.name}: statement {name!r} is defined twice")
            if not body:
                raise ValueError(f"{path.name}: statement {name!r} is empty")
            self._statements[name] = body

    @classmethod
    def beside(cls, module_file: str, name: str = "queries.sql") -> SqlFile:
        return cls(Path(module_file).with_name(name))

    def __getattr__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise AttributeError(f"{self.path.name} has no statement {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._statements)
