"""Text a client sent, checked once at each edge: valid Unicode (no lone surrogates, which JSON escapes such as
`"\\ud800"` can carry and which cannot be encoded, logged or stored) and no NUL (PostgreSQL text cannot hold it).

Pure: the standard library only.
"""

from __future__ import annotations

from typing import Any

NUL = "must not contain NUL characters"
NOT_UNICODE = "must be valid Unicode (no lone surrogates)"


def text_problem(value: str) -> str | None:
    """Why `value` cannot be accepted as text, or None when it can."""
    if "\x00" in value:
        return NUL
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return NOT_UNICODE
    return None


def is_clean(value: str) -> bool:
    return text_problem(value) is None


def find_bad_text(value: Any) -> tuple[str, str] | None:
    """The path (`a.b.0`) and problem of the first unacceptable string in parsed JSON, keys included; else None.

    Iterative, so that JSON nested as deep as the parser allowed cannot exhaust the stack here."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return ".".join(path) or "(value)", problem
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                key_text = str(key)
                problem = text_problem(key_text)
                if problem is not None:
                    return ".".join(path) or "(object)", f"a key {problem}"
                stack.append(((*path, key_text), child))
        elif isinstance(item, list):
            stack.extend(((*path, str(i)), child) for i, child in reversed(list(enumerate(item))))
    return None
