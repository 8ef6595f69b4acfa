"""Training losses of facetoon's models, as pure functions: import the submodules
(:mod:`facetoon.losses.ugatit`, :mod:`facetoon.losses.animegan`)."""
