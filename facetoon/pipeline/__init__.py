"""The portrait pipeline: ``facetoon.stylize(image)`` and the reusable :class:`Stylizer`.

    >>> import facetoon
    >>> out = facetoon.stylize("portrait.jpg")                      # doctest: +SKIP
    >>> st = facetoon.Stylizer(strength=0.8)                        # loads the models once
    >>> outs = [st(p) for p in ["a.jpg", "b.jpg"]]                  # doctest: +SKIP
    >>> res = st.stylize("a.jpg", return_details=True)              # doctest: +SKIP
    >>> res.image, res.faces[0].heatmap, res.faces[0].mask          # doctest: +SKIP

The pipeline only orchestrates (diffusers style); every step is a public function of its own
module:

1. read the input (:func:`facetoon.io.read_image`: EXIF orientation, gray, 16-bit, RGBA — the
   models see transparent pixels composited over white, the alpha is kept aside);
2. find faces (:func:`facetoon.face.detect_faces`), largest first;
3. align each to the face model's template at the model's training size
   (:func:`facetoon.face.align_face`);
4. stylize the crops in one batch with the face model (U-GAT-IT A->B generator) and the whole
   photo with the scene model (:class:`facetoon.background.BackgroundStylizer`: AnimeGAN,
   CartoonGAN...), both under ``torch.inference_mode`` with the chosen precision;
5. paste the faces back (:mod:`facetoon.blend`: soft face-and-hair masks, colour
   harmonisation, soft or Poisson blending, largest face last);
6. mix with the photo by ``strength`` and re-attach the alpha channel.

``stylize(image, faces=..., face_weights=...)`` skips step 2 for faces found elsewhere (a video
tracker) and scales each face's blend mask; :meth:`Stylizer.stylize_batch` runs several images
through the same stages with the face crops of all of them in one face-model batch.

Images: RGB ``uint8`` arrays ``(H, W, 3)`` inside; models see ``(B, 3, H, W)`` float RGB in
``[-1, 1]``.

Modules of this package:

- :mod:`~facetoon.pipeline.stylizer`: the :class:`Stylizer` (stages, ``from_pretrained`` /
  ``save_pretrained``);
- :mod:`~facetoon.pipeline.functional`: :func:`stylize` over a cache of Stylizers;
- :mod:`~facetoon.pipeline.loading`: finding and loading the face and scene models;
- :mod:`~facetoon.pipeline.options`: option checks shared with the video frame loop;
- :mod:`~facetoon.pipeline.image_io`: reading the input, mixing and returning the output;
- :mod:`~facetoon.pipeline.results`: :class:`StylizeResult` and :class:`FaceDetails`.
"""

from .functional import clear_cache, get_stylizer, stylize
from .loading import DEFAULT_BACKGROUND_WEIGHTS, DEFAULT_FACE_WEIGHTS
from .options import validate_blend, validate_faces, validate_harmonize, validate_max_faces, validate_strength
from .results import FaceDetails, StylizeResult
from .stylizer import PIPELINE_CONFIG, Stylizer

__all__ = [
    "DEFAULT_FACE_WEIGHTS",
    "DEFAULT_BACKGROUND_WEIGHTS",
    "PIPELINE_CONFIG",
    "FaceDetails",
    "StylizeResult",
    "Stylizer",
    "clear_cache",
    "get_stylizer",
    "stylize",
    "validate_blend",
    "validate_faces",
    "validate_harmonize",
    "validate_max_faces",
    "validate_strength",
]
