"""Affine helpers of facetoon.face.geometry against OpenCV and scikit-image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facetoon.face.geometry import (
    apply_affine,
    compose,
    estimate_similarity,
    invert_affine,
    matrix_angle,
    matrix_scale,
    resize_matrix,
    rotation_about,
    translation,
)


@pytest.mark.parametrize("angle,scale", [(0.0, 1.0), (30.0, 1.0), (-47.5, 0.6), (120.0, 2.5)])
def test_rotation_about_matches_opencv(angle: float, scale: float) -> None:
    ours = rotation_about((31.5, -12.25), angle, scale)
    ref = cv2.getRotationMatrix2D((31.5, -12.25), angle, scale)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert matrix_angle(ours) == pytest.approx(angle if angle <= 180 else angle - 360)
    assert matrix_scale(ours) == pytest.approx(scale)


def test_positive_angle_is_counter_clockwise_as_displayed() -> None:
    # a point to the right of the centre moves up (smaller y) for a small positive angle
    (x, y), = apply_affine(rotation_about((0.0, 0.0), 10.0), [(1.0, 0.0)])
    assert x > 0.9 and y < 0


def test_compose_and_invert() -> None:
    a = rotation_about((5, 7), 33.0, 1.7)
    b = translation(-3.0, 11.0)
    pts = np.random.default_rng(0).normal(size=(10, 2)) * 50
    np.testing.assert_allclose(apply_affine(compose(a, b), pts), apply_affine(a, apply_affine(b, pts)))
    np.testing.assert_allclose(apply_affine(invert_affine(a), apply_affine(a, pts)), pts, atol=1e-9)


def test_resize_matrix_matches_cv2_resize() -> None:
    # one bright pixel: its position after cv2.resize (linear) follows resize_matrix
    img = np.zeros((40, 60), np.float32)
    img[13, 27] = 1.0
    big = cv2.resize(img, (180, 120), interpolation=cv2.INTER_LINEAR)  # 3x
    ys, xs = np.nonzero(big > 0)
    w = big[ys, xs]
    centroid = np.array([np.sum(xs * w) / w.sum(), np.sum(ys * w) / w.sum()])
    np.testing.assert_allclose(centroid, apply_affine(resize_matrix(3.0), [(27, 13)])[0], atol=1e-3)


def test_estimate_similarity_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, size=(68, 2))
    true = compose(translation(12.5, -40.0), rotation_about((100, 100), -21.0, 1.35))
    dst = apply_affine(true, src)
    np.testing.assert_allclose(estimate_similarity(src, dst), true, atol=1e-9)
    # least squares: noise does not bias it much
    noisy = dst + rng.normal(scale=0.5, size=dst.shape)
    est = estimate_similarity(src, noisy)
    assert matrix_angle(est) == pytest.approx(-21.0, abs=0.2)
    assert matrix_scale(est) == pytest.approx(1.35, rel=0.005)


def test_estimate_similarity_rejects_degenerate_points() -> None:
    with pytest.raises(ValueError):
        estimate_similarity(np.ones((5, 2)), np.random.default_rng(0).normal(size=(5, 2)))
    with pytest.raises(ValueError):
        estimate_similarity(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError):
        estimate_similarity(np.zeros((5, 2)), np.zeros((4, 2)))
