"""The AnimeGAN dataset layout and its validation.

::

    ROOT/
      train_photo/          real photos (the content domain)
      <style>/style/        anime images of one style (e.g. Hayao/style)
      <style>/smooth/       their edge-smoothed copies, same file names (``facetoon prepare-smooth
                            ROOT/<style>/style ROOT/<style>/smooth --size IMG_SIZE``)
      val/                  a few photos for the sample grids during training

:func:`check_animegan_layout` returns the resolved file lists or raises :class:`DataError` with
one line naming every missing or empty part (and how to make the smooth copies). Style images
whose smooth copy cannot be written under the same name (e.g. ``.gif``) must be converted to PNG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..io import list_images
from .smoothing import _names, unwritable_images

__all__ = ["AnimeGANLayout", "check_animegan_layout", "list_styles"]


@dataclass(frozen=True)
class AnimeGANLayout:
    """A validated dataset: root, style name and the image files of each part (sorted)."""

    root: Path
    style: str
    photos: tuple[Path, ...]
    style_images: tuple[Path, ...]
    smooth_images: tuple[Path, ...]
    val_images: tuple[Path, ...]


def list_styles(root: str | os.PathLike[str]) -> list[str]:
    """Names of the folders of ``root`` that contain a ``style/`` folder."""
    r = Path(root)
    if not r.is_dir():
        return []
    return sorted(p.name for p in r.iterdir() if (p / "style").is_dir())


def check_animegan_layout(
    root: str | os.PathLike[str], style: str | None = None, *, require_val: bool = True
) -> AnimeGANLayout:
    """Validate ``root`` (see module doc) for ``style`` (default: the only style folder present)."""
    r = Path(root)
    if not r.is_dir():
        raise DataError("dataset folder not found", path=r)
    if style is None:
        styles = list_styles(r)
        if len(styles) != 1:
            found = ", ".join(styles) if styles else "none"
            raise DataError(f"name the style folder to use (folders with a style/ subfolder: {found})",
                            path=r)
        style = styles[0]
    problems: list[str] = []

    def images(rel: str, required: bool = True) -> tuple[Path, ...]:
        folder = r / rel
        if not folder.is_dir():
            if required:
                problems.append(f"{rel}/ is missing")
            return ()
        files = tuple(list_images(folder, required=False))
        if not files and required:
            problems.append(f"{rel}/ has no images")
        return files

    photos = images("train_photo")
    style_images = images(f"{style}/style")
    smooth_dir = r / style / "smooth"
    smooth_images = images(f"{style}/smooth")
    val_images = images("val", required=require_val)
    if style_images and smooth_dir.is_dir():
        have = {p.name for p in smooth_images}
        lacking = [p for p in style_images if p.name not in have]
        unwritable = unwritable_images(lacking)
        if unwritable:  # prepare-smooth cannot make their copies
            problems.append(f"{len(unwritable)} style image(s) without a smooth copy are in a format the "
                            f"copy cannot be written in (convert them to PNG): {_names(unwritable)}")
            lacking = [p for p in lacking if p not in unwritable]
        if lacking:
            problems.append(f"{len(lacking)} of {len(style_images)} style images have no smooth copy "
                            f"(e.g. {lacking[0].name})")
    if problems:
        hint = ""
        if any("smooth" in p for p in problems):
            hint = (f"; make the smooth copies with: facetoon prepare-smooth {r / style / 'style'} "
                    f"{smooth_dir} --size IMG_SIZE (the training img_size)")
        raise DataError("AnimeGAN dataset incomplete: " + "; ".join(problems) + hint, path=r)
    return AnimeGANLayout(r, style, photos, style_images, smooth_images, val_images)
