"""Faces: detection, landmarks, alignment to a template, and the warp back.

    >>> import facetoon
    >>> faces = facetoon.detect_faces(image)                  # doctest: +SKIP
    >>> aligned = facetoon.align_face(image, faces[0])       # 256x256 crop, selfie2anime framing
    >>> out = facetoon.paste_back(image, stylized, aligned)  # doctest: +SKIP

Importing this package loads numpy only; dlib, OpenCV, scikit-image and torch are imported
when a function needs them.
"""

from __future__ import annotations

from .align import DEFAULT_PADDING, PADDING_MODES, align_face, alignment_matrix, crop_with_matrix
from .backends import FaceBackend, available_backends, get_backend, register_backend
from .detect import detect_faces
from .template import DEFAULT_TEMPLATE, FaceTemplate
from .types import AlignedFace, Face
from .warp import paste_back, warp_to_image

__all__ = [
    "AlignedFace",
    "DEFAULT_PADDING",
    "DEFAULT_TEMPLATE",
    "Face",
    "FaceBackend",
    "FaceTemplate",
    "PADDING_MODES",
    "align_face",
    "alignment_matrix",
    "available_backends",
    "crop_with_matrix",
    "detect_faces",
    "get_backend",
    "paste_back",
    "register_backend",
    "warp_to_image",
]
