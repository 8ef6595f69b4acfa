"""Typed exceptions of facetoon.

Every error facetoon raises on purpose derives from :class:`FacetoonError` and carries a
one-line message that names the file (or argument) and the problem, so that the CLI can print
it as is. Several also derive from the matching built-in exception (``ValueError``,
``FileNotFoundError``) so that generic ``except`` clauses keep working.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "FacetoonError",
    "InvalidImageError",
    "ImageTooLargeError",
    "NoFaceError",
    "WeightsError",
    "ConfigError",
    "DataError",
    "VideoError",
    "OutputError",
    "TrainingError",
]


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type name: how a foreign error (PIL, PyAV,
    OS) is quoted inside one of facetoon's one-line messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class FacetoonError(Exception):
    """Base class of every error facetoon raises deliberately."""

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InvalidImageError(FacetoonError, ValueError):
    """An input is not a readable image (missing, empty, corrupt, wrong type or shape)."""


class ImageTooLargeError(InvalidImageError):
    """An image declares more pixels than the configured budget (decompression-bomb guard)."""


class NoFaceError(FacetoonError):
    """No face was found where one was required (``require_face=True``)."""


class WeightsError(FacetoonError):
    """Model weights are missing, unreadable or do not match the architecture."""


class ConfigError(FacetoonError, ValueError):
    """A configuration file or option is invalid."""


class DataError(FacetoonError):
    """A training or evaluation data folder is missing or malformed."""


class VideoError(FacetoonError):
    """A video cannot be read, decoded or written."""


class OutputError(FacetoonError, OSError):
    """An output cannot be written (it would overwrite an input, exists, or the disk refused)."""


class TrainingError(FacetoonError):
    """Training cannot go on: e.g. the losses are no longer finite (the weights diverged)."""
