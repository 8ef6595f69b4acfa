"""The default template reproduces the framing of the selfie2anime training selfies."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetoon.errors import ConfigError
from facetoon.face import DEFAULT_TEMPLATE, FaceTemplate, align_face, detect_faces

REPO = Path(__file__).resolve().parents[1]


def _sample(shared: Path, step: int = 64) -> list[np.ndarray]:
    files = sorted((shared / "data" / "selfie2anime" / "trainA").glob("*.jpg"))[3::step]
    out = []
    for path in files:
        with Image.open(path) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def test_template_shapes_and_rescaling() -> None:
    t = DEFAULT_TEMPLATE
    assert t.size == 256 and t.points5.shape == (5, 2) and t.points68.shape == (68, 2) and t.named.shape == (5, 2)
    assert not t.points5.flags.writeable
    # symmetric about the vertical centre line, eyes above nose above mouth
    assert abs((t.named[0, 0] + t.named[1, 0]) / 2 - 127.5) < 3
    assert t.named[0, 1] < t.named[2, 1] < t.named[3, 1]
    # rescaling keeps the pixel-centre convention: the 256 frame's edges map to the new edges
    np.testing.assert_allclose(t.points("dlib5", 512), (t.points5 + 0.5) * 2 - 0.5)
    np.testing.assert_allclose(t.named_point("nose", 128)[0], (t.named[2] + 0.5) / 2 - 0.5)
    with pytest.raises(ValueError):
        t.points("bogus")
    with pytest.raises(ConfigError, match=r"points5: expected \(5, 2\) finite numbers, got shape \(4, 2\)"):
        FaceTemplate.from_points(np.zeros((4, 2)), t.points68, t.named)
    with pytest.raises(ConfigError, match="points68: expected"):  # a flat array is not reshaped silently
        FaceTemplate.from_points(t.points5, t.points68.ravel(), t.named)
    with pytest.raises(ConfigError, match="named: expected"):
        FaceTemplate.from_points(t.points5, t.points68, np.full((5, 2), np.nan))
    with pytest.raises(ConfigError, match="size: expected a positive integer"):
        FaceTemplate.from_points(t.points5, t.points68, t.named, size=0)


def test_template_repr_is_one_short_line() -> None:
    """The default template is the default argument of align_face & co.: help() and signatures
    show its repr, which must not dump 78 points."""
    text = repr(DEFAULT_TEMPLATE)
    assert "\n" not in text and len(text) < 120 and "5/68/5 points" in text, text
    assert "FaceTemplate(name=" in str(inspect.signature(align_face))


def test_aligning_training_selfies_changes_their_framing_little(shared: Path) -> None:
    """Over a sample of trainA, aligning with the template neither shifts nor scales the faces on
    average (the per-image change is the spread of the selfies' own framing: tilted heads,
    varying zoom — see scripts/measure_template.py for the full-data figures)."""
    imgs, found = [], []
    moves, scales = [], []
    for img in _sample(shared):
        faces = detect_faces(img, max_faces=1)
        if not faces:
            continue
        a = align_face(img, faces[0])
        moves.append(a.landmarks - faces[0].landmarks)  # trainA images are 256x256: same frame
        scales.append(a.scale)
        imgs.append(img)
        found.append(faces[0])
    assert len(moves) >= 45
    moves_arr = np.stack(moves)
    systematic = np.linalg.norm(moves_arr.mean(axis=0), axis=1).mean()
    per_image = np.linalg.norm(moves_arr, axis=2).mean(axis=1)
    # no average shift/zoom: the template is the selfies' mean framing. The sample mean of the
    # moves is within sampling noise of zero (|mean| / standard error is ~0.8 for no bias)
    n = len(moves_arr)
    z = np.abs(moves_arr.mean(axis=0)) / (moves_arr.std(axis=0, ddof=1) / np.sqrt(n))
    assert z.mean() < 1.5
    assert systematic < 4.0
    assert abs(np.exp(np.mean(np.log(scales))) - 1.0) < 0.05
    assert np.median(per_image) < 16.0

    # the best template for this very sample — its own mean upright shape — does not do much
    # better: what remains is the spread of the selfies' framing, not a template error
    upright = []
    for f in found:
        theta = -np.radians(f.angle)
        rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
        centre = f.landmarks.mean(axis=0)
        upright.append((f.landmarks - centre) @ rot + centre)
    own = FaceTemplate.from_points(np.mean(upright, axis=0), DEFAULT_TEMPLATE.points68, DEFAULT_TEMPLATE.named)
    own_disp = [np.linalg.norm(align_face(img, f, template=own).landmarks - f.landmarks, axis=1).mean()
                for img, f in zip(imgs, found)]
    assert per_image.mean() < 1.15 * np.mean(own_disp)


def test_measure_template_script_reproduces_the_stored_constant(shared: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "measure_template.py"), "--limit", "48", "--json",
         "--data", str(shared / "data" / "selfie2anime" / "trainA")],
        capture_output=True, text=True, timeout=600, check=True,
    )
    result = json.loads(out.stdout)
    assert result["images"] == 48 and result["detection_rate_5"] > 0.9
    p5 = np.array(result["points5"])
    p68 = np.array(result["points68"])
    # a 48-image sample lands within a few pixels of the 3206-image constant
    assert np.linalg.norm(p5 - DEFAULT_TEMPLATE.points5, axis=1).mean() < 4.0
    assert np.linalg.norm(p68 - DEFAULT_TEMPLATE.points68, axis=1).mean() < 4.0
