"""Debug drawings (facetoon.viz), the `facetoon faces` command, and cheap imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetoon import viz
from facetoon.cli import main
from facetoon.errors import ConfigError, InvalidImageError
from facetoon.face import DEFAULT_TEMPLATE, align_face, detect_faces
from facetoon.face.geometry import apply_affine


@pytest.fixture(scope="module")
def photo(shared: Path) -> np.ndarray:
    with Image.open(shared / "fixtures" / "four_faces.jpg") as im:
        return np.asarray(im.convert("RGB"))


def test_draw_faces_marks_boxes_and_points_without_touching_the_input(photo: np.ndarray) -> None:
    before = photo.copy()
    faces = detect_faces(photo)
    out = viz.draw_faces(photo, faces)
    assert out.shape == photo.shape and out.dtype == np.uint8 and out is not photo
    assert np.array_equal(photo, before)
    changed = np.any(out != photo, axis=2)
    for f in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        # the box's top edge and the eye centres were drawn on
        top = changed[max(0, y0 - 1):y0 + 2, max(0, x0 + 3):max(0, x1 - 3)]
        assert top.mean() > 0.5
        ex, ey = (int(round(v)) for v in f.left_eye)
        assert changed[ey, ex]
    assert changed.mean() < 0.2


def test_draw_helpers(photo: np.ndarray) -> None:
    gray = photo[:, :, 0]
    boxes = viz.draw_boxes(gray, [(10.0, 10.0, 60.0, 50.0)], labels=["x"])
    assert boxes.shape == photo.shape and np.any(boxes[10, 20] != gray[10, 20])
    pts = viz.draw_landmarks(photo, np.array([[100.0, 100.0]]))
    assert np.any(pts[100, 100] != photo[100, 100])
    tpl = viz.draw_template(size=128)
    assert tpl.shape == (128, 128, 3)
    (x, y), = np.round(DEFAULT_TEMPLATE.named_point("nose", 128)).astype(int)
    assert np.any(tpl[y, x] != 128)
    with pytest.raises(InvalidImageError):
        viz.draw_boxes(np.zeros((4, 4, 2), np.uint8), [])
    with pytest.raises(InvalidImageError, match="^image: "):
        viz.draw_boxes(None, [])


def test_caption_draws_a_box_top_left_only(photo: np.ndarray) -> None:
    before = photo.copy()
    out = viz.caption(photo, "photo")
    assert np.array_equal(photo, before)  # a new image; the input is untouched
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.array_equal(out[0, 0], [0, 0, 0])  # the box
    h, w = photo.shape[:2]
    assert np.array_equal(out[h // 2:, :], photo[h // 2:, :]) and np.array_equal(out[:, w // 2:], photo[:, w // 2:])
    box = out[: h // 2, : w // 2]
    assert (box == 255).all(axis=2).any()  # white text
    small = viz.caption(photo, "photo", scale=0.3)
    big = viz.caption(photo, "photo", scale=1.5)
    assert (small != photo).any(axis=2).sum() < (big != photo).any(axis=2).sum()
    gray = viz.caption(photo[:, :, 0], "g")
    assert gray.shape == photo.shape


def test_draw_crop_grid_follows_the_inverse_matrix(photo: np.ndarray) -> None:
    face = detect_faces(photo)[0]
    a = align_face(photo, face)
    out = viz.draw_crop_grid(photo, a, grid=4)
    changed = np.any(out != photo, axis=2)
    # the middle of the crop's left edge and its centre lines are drawn where the inverse maps them
    for crop_pt in [(-0.5, 127.5), (127.5, 127.5), (127.5, 40.0)]:
        x, y = np.round(apply_affine(a.inverse, [crop_pt])[0]).astype(int)
        if 0 <= x < photo.shape[1] and 0 <= y < photo.shape[0]:
            assert changed[max(0, y - 1):y + 2, max(0, x - 1):x + 2].any()
    same = viz.draw_crop_grid(photo, a.matrix, size=a.size, grid=4)
    assert np.array_equal(same, out)
    with pytest.raises(ConfigError, match="^size: needed"):
        viz.draw_crop_grid(photo, a.matrix)


def test_viz_takes_what_detect_faces_and_the_pipeline_take_and_return(shared: Path, photo: np.ndarray) -> None:
    """Was: FaceDetails -> AttributeError, a single Face -> TypeError, a FaceDetails in
    draw_crop_grid -> a ValueError about a matrix; paths, PIL and float images refused."""
    from facetoon.pipeline import FaceDetails

    faces = detect_faces(photo)
    aligned = [align_face(photo, f) for f in faces]
    details = [FaceDetails(face=f, aligned=a, stylized=a.image, heatmap=None, crop_mask=a.mask,
                           mask=np.zeros(photo.shape[:2], np.float32)) for f, a in zip(faces, aligned)]
    ref = viz.draw_faces(photo, faces)
    assert np.array_equal(viz.draw_faces(photo, details), ref)
    assert np.array_equal(viz.draw_faces(photo, tuple(faces)), ref)
    assert np.array_equal(viz.draw_faces(photo, faces[0]), viz.draw_faces(photo, faces[:1]))
    assert np.array_equal(viz.draw_faces(photo, details[0]), viz.draw_faces(photo, faces[:1]))
    path = shared / "fixtures" / "four_faces.jpg"
    with Image.open(path) as im:
        for image in (path, str(path), im, photo / 255.0, photo[:, :, :1]):
            out = viz.draw_faces(image, faces)
            assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.array_equal(viz.draw_faces(path, faces), ref)
    assert np.array_equal(viz.draw_faces(photo / 255.0, faces), ref)
    grid = viz.draw_crop_grid(photo, aligned[0])
    assert np.array_equal(viz.draw_crop_grid(photo, details[0]), grid)
    assert np.array_equal(viz.draw_crop_grid(path, aligned[0]), grid)
    with pytest.raises(ConfigError, match=r"^faces\[1\]: expected a facetoon.face.Face .* got str"):
        viz.draw_faces(photo, [faces[0], "face"])
    with pytest.raises(ConfigError, match="^faces: .* got ndarray"):
        viz.draw_faces(photo, faces[0].landmarks)
    with pytest.raises(ConfigError, match="align_face"):
        viz.draw_crop_grid(photo, faces[0])
    with pytest.raises(ConfigError, match=r"^aligned: .*got shape \(3, 3\)"):
        viz.draw_crop_grid(photo, np.eye(3), size=256)
    with pytest.raises(InvalidImageError, match="^image: "):
        viz.draw_faces(photo * 2.0, faces)  # a float image outside [0, 1]


def test_cli_faces(shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = shared / "fixtures" / "four_faces.jpg"
    draw, crops = tmp_path / "debug.png", tmp_path / "crops"
    assert main(["faces", str(src), "--json", "--draw", str(draw), "--crops", str(crops), "--size", "128"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and len(rows[0]["landmarks"]) == 5 and rows[0]["size"] >= rows[-1]["size"]
    with Image.open(draw) as im:
        assert im.size == (512, 355)
    written = sorted(p.name for p in crops.iterdir())
    assert written == ["face0.png", "face1.png", "face2.png", "face3.png"]
    with Image.open(crops / "face0.png") as im:
        assert im.size == (128, 128)
    assert main(["faces", str(src), "--max-faces", "1"]) == 0
    text = capsys.readouterr().out
    assert "1 face(s)" in text and "#0: box" in text
    # fewer faces into the same folder: the three older crops stay, with a warning naming them
    assert main(["faces", str(src), "--max-faces", "1", "--crops", str(crops)]) == 0
    err = capsys.readouterr().err
    assert "3 crop(s) not from this image" in err and "face1.png, face2.png, face3.png" in err
    assert sorted(p.name for p in crops.iterdir()) == written
    assert main(["faces", str(tmp_path / "missing.jpg")]) == 1
    assert "missing.jpg" in capsys.readouterr().err


@pytest.mark.parametrize(("options", "message"), [
    (["--draw", "{tmp}/d.xyz"], "--draw: unsupported image extension '.xyz'"),
    (["--crops", "{tmp}/crops", "--size", "4"], "--size must be an integer 8..4096, got 4"),
])
def test_cli_faces_checks_its_options_before_printing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str) -> None:
    """A failing run prints no results first (a script reading --json would take them for a success)."""
    src = Path(__file__).parents[1] / "examples" / "astronaut.png"
    code = main(["faces", str(src), "--json", *(o.replace("{tmp}", str(tmp_path)) for o in options)])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("options", "message"), [
    (["--draw", "{tmp}/text.jpg/d.png"], "{tmp}/text.jpg/d.png: --draw cannot be written: {tmp}/text.jpg is a file"),
    (["--crops", "{tmp}/text.jpg"], "{tmp}/text.jpg: --crops names a file, not a folder"),
    (["--crops", "{tmp}/text.jpg/crops"], "--crops cannot be written: {tmp}/text.jpg is a file, not a folder"),
])
def test_cli_faces_refuses_a_file_where_a_folder_is_needed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str) -> None:
    """Checked before detection, with the file named (mkdir only said "File exists", after the results)."""
    (tmp_path / "text.jpg").write_bytes(b"a file")
    src = Path(__file__).parents[1] / "examples" / "astronaut.png"
    code = main(["faces", str(src), *(o.replace("{tmp}", str(tmp_path)) for o in options)])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert message.replace("{tmp}", str(tmp_path)) in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["text.jpg"] and (tmp_path / "text.jpg").read_bytes() == b"a file"


def test_importing_facetoon_face_and_viz_loads_no_heavy_module() -> None:
    code = ("import sys, facetoon, facetoon.face, facetoon.viz, facetoon.cli.faces; "
            "print(sorted(m for m in ('cv2', 'dlib', 'torch', 'skimage', 'face_alignment') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
