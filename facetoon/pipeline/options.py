"""Checks of the pipeline's options, shared by :class:`~facetoon.pipeline.Stylizer` and the video
frame loop (:mod:`facetoon.video.pipeline`): each returns the normalised value or raises
:class:`~facetoon.errors.ConfigError` with a one-line message that names the option."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..blend import BLEND_MODES
from ..errors import ConfigError
from ..face import Face

__all__ = [
    "KEEP",
    "CallOptions",
    "Keep",
    "check_option_keys",
    "pick_faces",
    "resolve_call_options",
    "validate_blend",
    "validate_faces",
    "validate_harmonize",
    "validate_max_faces",
    "validate_strength",
]


class Keep:
    """Sentinel: keep the Stylizer's own value of an option."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()


def validate_strength(value: Any) -> float:
    """``strength``: a number in ``[0, 1]``; raises :class:`ConfigError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"strength: expected a number in [0, 1], got {value!r}")
    return float(value)


def validate_max_faces(value: Any) -> int | None:
    """``max_faces``: ``None`` (all faces) or an integer ``>= 0``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"max_faces: expected None or an integer >= 0, got {value!r}")
    return int(value)


def validate_blend(value: Any) -> str:
    """``blend``: one of :data:`facetoon.blend.BLEND_MODES` (``"soft"``, ``"poisson"``, ``"hard"``)."""
    if value not in BLEND_MODES:
        raise ConfigError(f"blend: expected one of {list(BLEND_MODES)}, got {value!r}")
    return str(value)


def validate_harmonize(value: Any) -> float:
    """``harmonize``: ``True`` (1.0), ``False`` (0.0) or an amount in ``[0, 1]``."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, (int, float, np.number)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"harmonize: expected True, False or an amount in [0, 1], got {value!r}")
    return float(value)


def validate_faces(faces: Any, face_weights: Any = None, *,
                   name: str = "faces") -> tuple[list[Face], list[float]]:
    """``faces`` (a sequence of :class:`~facetoon.face.Face`) and their ``face_weights``.

    Returns ``(faces, weights)`` as lists; ``weights`` is all ones when ``face_weights`` is
    ``None``, else one number in ``[0, 1]`` per face.
    """
    if isinstance(faces, (Face, str, bytes)) or not isinstance(faces, Sequence):
        raise ConfigError(f"{name}: expected a sequence of facetoon.face.Face, got {type(faces).__name__}")
    out = list(faces)
    for i, f in enumerate(out):
        if not isinstance(f, Face):
            raise ConfigError(f"{name}[{i}]: expected a facetoon.face.Face, got {type(f).__name__}")
    wname = name.replace("faces", "face_weights", 1)
    if face_weights is None:
        return out, [1.0] * len(out)
    if isinstance(face_weights, (str, bytes)) or not isinstance(face_weights, (Sequence, np.ndarray)):
        raise ConfigError(f"{wname}: expected a sequence of numbers in [0, 1], "
                          f"got {type(face_weights).__name__}")
    weights = list(face_weights)
    if len(weights) != len(out):
        raise ConfigError(f"{wname}: expected one weight per face ({len(out)}), got {len(weights)}")
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, (int, float, np.number)) or not 0.0 <= float(w) <= 1.0:
            raise ConfigError(f"{wname}[{i}]: expected a number in [0, 1], got {w!r}")
    return out, [float(w) for w in weights]


def check_option_keys(what: str, options: Mapping[str, Any], target: Any, reserved: Sequence[str]) -> dict[str, Any]:
    """``options`` as a dict, after checking that each key is a keyword argument of ``target`` (a
    function or class) and not one of ``reserved`` (set by the Stylizer itself).

    Raises:
        ConfigError: ``options`` is not a mapping, or names an unknown or reserved key.
    """
    if not isinstance(options, Mapping):
        raise ConfigError(f"{what}: expected a dict of options, got {type(options).__name__}")
    params = inspect.signature(target).parameters
    known = sorted(k for k, p in params.items()
                   if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is not p.empty)
    for key in options:
        if key in reserved:
            raise ConfigError(f"{what}: pass {key!r} as a Stylizer option, not here")
        if key not in known:
            allowed = ", ".join(k for k in known if k not in reserved)
            raise ConfigError(f"{what}: unknown option {key!r} (known: {allowed})")
    return dict(options)


def pick_faces(faces: list[Face], weights: list[float],
               max_faces: int | None) -> tuple[list[Face], list[float]]:
    """Given faces to stylize: weight-0 faces dropped, then the ``max_faces`` largest (by
    ``Face.size``) kept in their given order."""
    kept = [(f, w) for f, w in zip(faces, weights) if w > 0.0]
    if max_faces is not None and len(kept) > max_faces:
        largest = sorted(range(len(kept)), key=lambda i: -kept[i][0].size)[:max_faces]
        kept = [kept[i] for i in sorted(largest)]
    return [f for f, _ in kept], [w for _, w in kept]


@dataclass
class CallOptions:
    """The resolved per-call options of :meth:`Stylizer.stylize` / :meth:`Stylizer.stylize_batch`."""

    strength: float
    max_faces: int | None
    blend: str
    harmonize: float


def resolve_call_options(own: CallOptions, strength: Any = None, max_faces: Any = KEEP, blend: Any = None,
                         harmonize: Any = None) -> CallOptions:
    """A call's options: each given value checked, ``None`` (``KEEP`` for ``max_faces``, where
    ``None`` means all faces) keeps ``own`` (the Stylizer's).

    Raises:
        ConfigError: an invalid value.
    """
    return CallOptions(
        strength=own.strength if strength is None else validate_strength(strength),
        max_faces=own.max_faces if isinstance(max_faces, Keep) else validate_max_faces(max_faces),
        blend=own.blend if blend is None else validate_blend(blend),
        harmonize=own.harmonize if harmonize is None else validate_harmonize(harmonize))
