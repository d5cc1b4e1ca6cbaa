"""glassnet's own exception types, for the two things that can go wrong with a file.

Both subclass the built-in type a caller would already catch (``ValueError``, ``OSError``), so
code written against the built-ins keeps working, and both name the file in their message.
Errors about arrays in memory are ``ValueError``/``TypeError`` (``ShapeError`` for shapes,
in ``module.py``) whose message starts with the argument's name.
"""

from __future__ import annotations

import os


class FileFormatError(ValueError):
    """A file glassnet cannot read: foreign, truncated, corrupt, hostile, or not matching what
    it is being loaded into. The message is ``"<path>: <problem>"``; ``path`` and ``problem``
    are also attributes. Raised by every reader: models, checkpoints, IDX files."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path, self.problem = os.fspath(path), problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep the two-argument constructor working through copy/multiprocessing
        return type(self), (self.path, self.problem)


class WriteError(OSError):
    """Writing a file failed (disk full, permission denied, ...). The file at ``path`` is left
    exactly as it was before the attempt; ``errno`` is the operating system's code."""

    def __init__(self, path: str | os.PathLike, cause: OSError) -> None:
        self.path, self.cause = os.fspath(path), cause
        reason = cause.strerror or str(cause) or type(cause).__name__
        super().__init__(f"cannot write {self.path}: {reason}; the previous file there (if any) is unchanged")
        self.errno, self.filename = cause.errno, self.path

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return type(self), (self.path, self.cause)


__all__ = ["FileFormatError", "WriteError"]
