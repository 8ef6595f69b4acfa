"""Blending stylized faces into the stylized scene, without a visible seam.

One concept per module:

* :mod:`facetoon.blend.mask` — the soft face-and-hair mask of an aligned crop (landmark
  outline, clipped to valid pixels, feathered in proportion to the face size);
* :mod:`facetoon.blend.harmonize` — colour/tone matching of the face to the scene around it
  (Lab mean/std over the transition band, plus a smooth local offset);
* :mod:`facetoon.blend.composite` — warping crops and masks back through the inverse alignment
  and compositing them (soft alpha, Poisson or hard), largest face last;
* :mod:`facetoon.blend.seam` — the seam measure (gradient energy on the mask boundary against
  the face inside and the scene outside).

    >>> from facetoon.blend import make_layer, composite_faces, seam_score
    >>> layer = make_layer(stylized_crop, aligned)            # doctest: +SKIP
    >>> result = composite_faces(scene, [layer])              # doctest: +SKIP
    >>> seam_score(result.image, result.masks[0]).ratio       # doctest: +SKIP

Images are ``(H, W, 3)`` uint8 RGB, masks ``(H, W)`` float32 in ``[0, 1]``. Importing this
package loads numpy only (OpenCV is imported by the functions that use it).
"""

from __future__ import annotations

from .composite import BLEND_MODES, CompositeResult, FaceLayer, composite_faces, make_layer, poisson_blend
from .harmonize import harmonize
from .mask import DEFAULT_SHAPE, MaskShape, crop_face_mask, face_outline, feather
from .seam import SeamScore, gradient_energy, seam_score

__all__ = [
    "BLEND_MODES",
    "CompositeResult",
    "DEFAULT_SHAPE",
    "FaceLayer",
    "MaskShape",
    "SeamScore",
    "composite_faces",
    "crop_face_mask",
    "face_outline",
    "feather",
    "gradient_energy",
    "harmonize",
    "make_layer",
    "poisson_blend",
    "seam_score",
]
