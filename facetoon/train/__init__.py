"""Training: shared services (:mod:`.loop`, :mod:`.config`, :mod:`.data`, :mod:`.checkpoint`,
:mod:`.logger`, :mod:`.distributed`) and the model trainers (:mod:`.ugatit`).

Nothing is imported here, so ``import facetoon.train.config`` stays cheap; import the
submodules you need.
"""
