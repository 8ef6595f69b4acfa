"""Training data preparation and layout checks: import the submodules
(:mod:`facetoon.data.smoothing`, :mod:`facetoon.data.animegan_layout`)."""
