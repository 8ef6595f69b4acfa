"""Pure tensor operations (colour spaces, tiled inference) and thin ``nn.Module`` wrappers.

Import the submodules: :mod:`facetoon.ops.color`, :mod:`facetoon.ops.tiling`.
"""
