"""Converters of foreign checkpoints into facetoon models.

One module per foreign format, each with an explicit key map that fails loudly (a
:class:`facetoon.errors.WeightsError` naming the file and the offending tensors) on any missing,
unexpected or wrongly shaped tensor. Foreign ``.pth`` files are read with
``torch.load(..., weights_only=True)`` only, so loading never executes code.

* :mod:`facetoon.convert.cartoongan`: the official CartoonGAN release (Hayao, Hosoda, Paprika,
  Shinkai generators).
* :mod:`facetoon.convert.animegan`: AnimeGANv2 generators saved by the widely used PyTorch port.
"""
