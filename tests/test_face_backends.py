"""Face backends: registry, missing model files, the CNN detector, FAN without/with weights."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetoon.errors import ConfigError, WeightsError
from facetoon.face import FaceBackend, available_backends, detect_faces, get_backend, register_backend
from facetoon.face.backends.base import Box, Detection
from facetoon.face.backends.dlib_backend import DlibBackend
from facetoon.face.backends.fan_backend import FAN_FILE, FanBackend, fan_weights_path


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_available_backends() -> None:
    assert {"dlib", "dlib-cnn", "fan"} <= set(available_backends())
    with pytest.raises(ConfigError):
        get_backend("nope")
    with pytest.raises(ConfigError):
        get_backend(get_backend("dlib"), landmarks="68")  # options need a name


def test_missing_dlib_model_files_raise_weights_error_with_hint(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETOON_DLIB_MODELS", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        DlibBackend(landmarks="5")
    assert "shape_predictor_5_face_landmarks.dat" in str(info.value)
    assert "pip install face-recognition-models" in str(info.value)
    with pytest.raises(ConfigError):
        DlibBackend(landmarks="12")
    with pytest.raises(ConfigError):
        DlibBackend(detector="sift")  # type: ignore[arg-type]


def test_cnn_detector_finds_the_same_face(selfies: list[Path]) -> None:
    img = _rgb(selfies[0])
    hog = detect_faces(img, max_faces=1)[0]
    cnn = detect_faces(img, backend="dlib-cnn", max_faces=1, detect_size=256)[0]
    assert cnn.backend == "dlib-cnn"
    assert np.linalg.norm(cnn.left_eye - hog.left_eye) < 0.05 * hog.size
    assert np.linalg.norm(cnn.right_eye - hog.right_eye) < 0.05 * hog.size


class _FixedBackend(FaceBackend):
    """A stand-in detector returning one known box, with landmarks from dlib's 5-point model:
    shows that a new backend is one small class."""

    name = "fixed"
    scheme = "dlib5"

    def __init__(self, box: Box) -> None:
        self.box = box
        self.dlib = get_backend("dlib")

    def detect(self, image: np.ndarray, *, upsample: int = 0, threshold: float | None = None) -> list[Detection]:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = self.box
        # the box is given for a 256-px image: follow the detection copy's scale
        k = w / 256.0
        return [Detection(((x0 + 0.5) * k - 0.5, (y0 + 0.5) * k - 0.5, (x1 + 0.5) * k - 0.5, (y1 + 0.5) * k - 0.5),
                          1.0)]

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        return self.dlib.landmarks(image, box)


def test_a_registered_backend_is_used_by_name(selfies: list[Path]) -> None:
    img = _rgb(selfies[0])
    ref = detect_faces(img, max_faces=1)[0]
    register_backend("fixed-test", lambda **kw: _FixedBackend(ref.box))
    assert "fixed-test" in available_backends()
    faces = detect_faces(img, backend="fixed-test")
    assert len(faces) == 1 and faces[0].backend == "fixed"
    np.testing.assert_allclose(faces[0].box, ref.box, atol=1.0)
    assert np.abs(faces[0].landmarks - ref.landmarks).max() <= 2.0


def test_fan_without_weights_fails_fast_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACETOON_FAN_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)  # forget a set_dir()
    expected = tmp_path / "torch" / "hub" / "checkpoints" / FAN_FILE
    assert fan_weights_path() == expected
    t0 = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        detect_faces(np.zeros((64, 64, 3), np.uint8), backend="fan")
    assert time.perf_counter() - t0 < 5.0
    msg = str(info.value)
    assert str(expected) in msg and "never downloads" in msg and "FACETOON_FAN_WEIGHTS" in msg
    assert not expected.exists() and not (tmp_path / "torch").exists()  # nothing was downloaded
    with pytest.raises(ConfigError):
        FanBackend(weights=expected, landmarks="5")


def test_fan_with_an_unusable_file_raises_weights_error(tmp_path: Path) -> None:
    bad = tmp_path / FAN_FILE
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError) as info:
        FanBackend(weights=bad)
    assert str(bad) in str(info.value)


def test_fan_with_weights_runs_end_to_end(tmp_path: Path, selfies: list[Path]) -> None:
    """With a (randomly initialised) FAN-4 checkpoint on disk the backend loads it and returns
    68 landmarks per face in image pixels. The real weights cannot be fetched here (offline), so
    this checks the loading and decoding path, not the landmark accuracy."""
    torch = pytest.importorskip("torch")
    fan_mod = pytest.importorskip("face_alignment.models.fan")
    torch.manual_seed(0)
    path = tmp_path / FAN_FILE
    torch.save(fan_mod.FAN(4).state_dict(), path)
    img = _rgb(selfies[0])
    backend = FanBackend(weights=path, threads=2)
    faces = detect_faces(img, backend=backend, max_faces=1, rotate="never", refine=False)
    assert len(faces) == 1
    f = faces[0]
    assert f.landmarks.shape == (68, 2) and f.scheme == "ibug68" and f.backend == "fan"
    assert np.all(np.isfinite(f.landmarks))
    # decoded heatmap maxima lie inside FAN's input window around the box
    x0, y0, x1, y1 = f.box
    side = 200.0 * ((x1 - x0) + (y1 - y0)) / 195.0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.12 * (y1 - y0)
    assert np.all(np.abs(f.landmarks[:, 0] - cx) <= side / 2 + 1)
    assert np.all(np.abs(f.landmarks[:, 1] - cy) <= side / 2 + 1)
    # the heatmap decoder maps a known peak back to the right image point
    heat = np.zeros((68, 64, 64), np.float32)
    heat[:, 20, 40] = 1.0
    m = FanBackend._crop_matrix((0.0, 0.0, 195.0, 195.0))
    pts = FanBackend._decode(heat, m)
    expected = (np.array([40, 20]) + 0.5) * 4 - 0.5  # in FAN input pixels
    back = np.linalg.solve(m[:, :2], expected - m[:, 2])
    np.testing.assert_allclose(pts[0], back, atol=1e-6)
