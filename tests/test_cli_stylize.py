"""Tests of ``facetoon stylize`` (batch stylization from the command line) on real photos.

The CLI runs in-process through ``facetoon.cli.main`` with randomly initialised models saved as
weights folders (the shipped defaults may not exist yet), except where a subprocess is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import facetoon  # noqa: E402
from facetoon.cli import main  # noqa: E402
from facetoon.models import create_model, save_pretrained  # noqa: E402
from facetoon.models.serialization import weights_dir  # noqa: E402
from train_helpers import one_thread  # noqa: E402,F401 (an autouse fixture: one thread)

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.png"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_pretrained(create_model("ugatit_generator", light=True, ngf=16, n_res=2, img_size=128),
                    root / "face", dtype=torch.float16)
    torch.manual_seed(1)
    save_pretrained(create_model("animegan", version="v2"), root / "scene", dtype=torch.float16)
    return {"face": root / "face", "scene": root / "scene"}


@pytest.fixture()
def inputs(tmp_path, selfies) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for p in selfies[:2]:
        shutil.copy(p, folder / p.name)
    return folder


def models(weights: dict[str, Path], scene: bool = False) -> list[str]:
    args = ["--face-weights", str(weights["face"])]
    if scene:
        return args + ["--background", "animegan", "--background-weights", str(weights["scene"])]
    return args + ["--background", "none"]


def test_readme_command(weights, tmp_path, capsys) -> None:
    """`facetoon stylize examples/astronaut.png -o examples/` with explicit weights."""
    out = tmp_path / "examples"
    rc = main(["stylize", str(ASTRONAUT), "-o", str(out) + os.sep, *models(weights, scene=True)])
    assert rc == 0
    result = out / "astronaut_facetoon.png"
    assert result.is_file()
    with Image.open(result) as im:
        assert im.size == (512, 512) and im.mode == "RGB"
    assert "1 written" in capsys.readouterr().out


@pytest.mark.skipif(not (weights_dir() / "ugatit-selfie2anime" / "config.json").is_file()
                    or not (weights_dir() / "animegan-anime" / "config.json").is_file(),
                    reason="default weights not shipped yet in weights/")
def test_readme_command_with_default_weights(tmp_path) -> None:
    rc = main(["stylize", str(ASTRONAUT), "-o", str(tmp_path)])
    assert rc == 0 and (tmp_path / "astronaut_facetoon.png").is_file()


def test_folders_globs_names_and_formats(weights, inputs, tmp_path, selfies) -> None:
    more = tmp_path / "more"
    more.mkdir()
    Image.open(selfies[2]).save(more / "third.png")
    out = tmp_path / "out" / "nested"  # created
    rc = main(["stylize", str(inputs), str(more / "*.png"), "-o", str(out), *models(weights)])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{p.stem}_facetoon.jpg" for p in selfies[:2]] + ["third_facetoon.png"])
    for p in selfies[:2]:
        with Image.open(out / f"{p.stem}_facetoon.jpg") as im, Image.open(p) as src:
            assert im.size == src.size
    # --format and --suffix
    rc = main(["stylize", str(inputs), "-o", str(out), "--format", "webp", "--suffix", "_anime",
               *models(weights)])
    assert rc == 0
    assert all((out / f"{p.stem}_anime.webp").is_file() for p in selfies[:2])


def test_single_output_file(weights, selfies, tmp_path) -> None:
    target = tmp_path / "me_anime.png"
    rc = main(["stylize", str(selfies[0]), "-o", str(target), *models(weights)])
    assert rc == 0 and target.is_file()
    # a file name with several inputs is refused (one-line error, exit 1): see
    # test_output_file_name_with_several_inputs_is_refused


def test_failures_are_summarised_and_the_batch_continues(weights, inputs, tmp_path, capsys) -> None:
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (inputs / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    rc = main(["stylize", str(inputs), str(tmp_path / "missing.jpg"), "-o", str(out), *models(weights)])
    assert rc == 1
    captured = capsys.readouterr()
    assert "2 written" in captured.out and "3 failed" in captured.out
    err = captured.err
    assert "broken.jpg" in err and "empty.png" in err and "missing.jpg" in err
    assert "Traceback" not in err
    assert len(list(out.glob("*_facetoon.jpg"))) == 2


def test_skip_existing(weights, inputs, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["stylize", str(inputs), "-o", str(out), *models(weights)]) == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert main(["stylize", str(inputs), "-o", str(out), "--skip-existing", *models(weights)]) == 0
    assert "2 skipped" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == first


def test_rerun_beside_the_inputs_leaves_out_earlier_outputs(weights, inputs, capsys) -> None:
    assert main(["stylize", str(inputs), "--details", *models(weights)]) == 0
    capsys.readouterr()
    # the folder now also holds the outputs and their _details folders: a second run on it
    # stylizes the two photos again, not its own outputs
    assert main(["stylize", str(inputs), "--recursive", *models(weights)]) == 0
    out = capsys.readouterr().out
    assert "2 written" in out and "earlier facetoon output(s) in the inputs left out" in out
    assert not list(inputs.glob("*_facetoon_facetoon*"))
    # a file named explicitly is taken whatever its name
    earlier = sorted(inputs.glob("*_facetoon.jpg"))[0]
    assert main(["stylize", str(earlier), *models(weights)]) == 0
    assert (inputs / f"{earlier.stem}_facetoon.jpg").is_file()


def test_output_with_an_unwritable_image_extension_is_refused(weights, selfies, tmp_path, capsys) -> None:
    rc = main(["stylize", str(selfies[0]), "-o", str(tmp_path / "out.gif"), *models(weights)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "cannot write .gif" in err and ".png" in err and "Traceback" not in err
    assert not (tmp_path / "out.gif").exists()


@pytest.mark.parametrize(("case", "message"), [
    ("two files", "-o looks like a file name but there are 2 input images; give a folder"),
    ("the same file twice", "-o looks like a file name but 2 inputs are given; give a folder"),
    ("a folder of two", "-o looks like a file name but there are 2 input images; give a folder"),
    ("an existing file", "-o names an existing file but there are 2 input images; give a folder"),
    ("a .gif name", "-o looks like a file name but there are 2 input images; give a folder"),
])
def test_output_file_name_with_several_inputs_is_refused(selfies, tmp_path, capsys, case, message) -> None:
    """Each case gets its own reason (it used to be "cannot write .png images; use one of ... .png"),
    before any model loads (the face weights named here do not exist)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for p in selfies[:2]:
        shutil.copy(p, folder / p.name)
    a, b = sorted(folder.iterdir())
    out = tmp_path / ("out.gif" if case == "a .gif name" else "out.png")
    if case == "an existing file":
        out.write_bytes(b"keep me")
    inputs = {"the same file twice": [a, a], "a folder of two": [folder]}.get(case, [a, b])
    rc = main(["stylize", *map(str, inputs), "-o", str(out), "--face-weights", str(tmp_path / "no-weights")])
    err = capsys.readouterr().err
    assert rc == 1 and err.strip() == f"facetoon: error: {out}: {message}", err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in"] + (["out.png"] if out.exists() else []))
    if out.exists():
        assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize("output", ["text.jpg/out.png", "text.jpg/folder"])
def test_output_under_a_file_is_refused(selfies, tmp_path, capsys, output) -> None:
    (tmp_path / "text.jpg").write_bytes(b"a file")
    out = tmp_path / output
    rc = main(["stylize", str(selfies[0]), "-o", str(out), "--face-weights", str(tmp_path / "no-weights")])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert f"-o cannot be written: {tmp_path / 'text.jpg'} is a file, not a folder" in err


def test_debug_shows_the_traceback_of_each_failure_and_the_batch_goes_on(
        weights, inputs, tmp_path, capsys) -> None:
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    out = tmp_path / "out"
    rc = main(["stylize", str(inputs), "-o", str(out), *models(weights), "--no-progress", "--debug"])
    captured = capsys.readouterr()
    assert rc == 1 and "2 written" in captured.out and "1 failed" in captured.out
    assert "Traceback" in captured.err and "InvalidImageError" in captured.err and "broken.jpg" in captured.err


def test_format_contradicting_the_output_extension_is_refused(weights, selfies, tmp_path, capsys) -> None:
    """``-o out.png --format jpg`` used to write a PNG and ignore --format; ``.jpeg`` with jpg is fine."""
    rc = main(["stylize", str(selfies[0]), "-o", str(tmp_path / "out.png"), "--format", "jpg", *models(weights)])
    err = capsys.readouterr().err
    assert rc == 1 and "--format jpg contradicts the extension of -o out.png" in err
    assert len(err.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []
    jpeg = tmp_path / "out.jpeg"
    assert main(["stylize", str(selfies[0]), "-o", str(jpeg), "--format", "jpg", *models(weights)]) == 0
    assert jpeg.is_file()


def test_never_overwrites_an_input(weights, inputs, capsys) -> None:
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    rc = main(["stylize", str(inputs), "--suffix", "", *models(weights)])  # output == input path
    assert rc == 1
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before


def test_never_overwrites_an_input_left_out_for_a_name_clash(weights, selfies, tmp_path, capsys) -> None:
    """x_facetoon.jpg and x_facetoon.png both want x_facetoon_facetoon.png, so the second is left
    out of the plan; it is still an input, and x.png's output (x_facetoon.png) must not replace it."""
    folder = tmp_path / "clash"
    folder.mkdir()
    for name, src in (("x_facetoon.jpg", selfies[0]), ("x_facetoon.png", selfies[1]), ("x.png", selfies[2])):
        Image.open(src).save(folder / name)
    before = (folder / "x_facetoon.png").read_bytes()
    rc = main(["stylize", *(str(folder / n) for n in ("x_facetoon.jpg", "x_facetoon.png", "x.png")),
               "--format", "png", *models(weights)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "would overwrite the output of" in err and "refusing to overwrite the input" in err
    assert (folder / "x_facetoon.png").read_bytes() == before


def test_details_and_options(weights, selfies, tmp_path, monkeypatch) -> None:
    import facetoon.background

    retained: list[bool] = []
    monkeypatch.setattr(facetoon.background, "retain_freed_memory", lambda: retained.append(True) or True)
    out = tmp_path / "out"
    rc = main(["stylize", str(selfies[0]), "-o", str(out), "--details", "--strength", "0.7",
               "--max-faces", "1",
               "--blend", "poisson", "--precision", "fp32", *models(weights, scene=True)])
    assert rc == 0
    assert retained  # with a scene model the command keeps freed memory mapped (this call asked for it)
    details = out / f"{selfies[0].stem}_facetoon_details"
    expected = {"scene.png", "faces.png", "mask.png", "face0_crop.png", "face0_stylized.png",
                "face0_mask.png", "face0_heatmap.png"}
    assert expected <= {p.name for p in details.iterdir()}
    with Image.open(details / "face0_heatmap.png") as im:
        assert im.size == (128, 128)
    with Image.open(details / "mask.png") as im, Image.open(selfies[0]) as src:
        assert im.size == src.size and np.asarray(im).max() == 255


def test_pipeline_file_options_survive_the_command_defaults(weights, tmp_path) -> None:
    """--pipeline: the file's precision and background_options stay unless the command gives its own;
    the command's retain_memory joins the file's scene options instead of replacing them."""
    import json

    from facetoon.cli import build_parser
    from facetoon.cli._stylizer_args import make_stylizer

    folder = tmp_path / "pipe"
    folder.mkdir()
    (folder / "pipeline.json").write_text(json.dumps({
        "face_model": str(weights["face"]), "background_model": "animegan",
        "background_weights": str(weights["scene"]),
        "options": {"precision": "fp32", "background_options": {"internal_scale": 0.5}, "strength": 0.8}}))
    parse = build_parser().parse_args
    st = make_stylizer(parse(["stylize", "x.jpg", "--pipeline", str(folder)]))
    assert st.runtime.precision == "fp32" and st.strength == 0.8
    assert st._background.internal_scale == 0.5 and st._background.precision == "fp32"
    st = make_stylizer(parse(["stylize", "x.jpg", "--pipeline", str(folder), "--background-scale", "0.25",
                              "--strength", "0.3"]))
    assert st._background.internal_scale == 0.25 and st.strength == 0.3 and st.runtime.precision == "fp32"


def test_background_speed_mode(weights, selfies, tmp_path, capsys) -> None:
    """--background-scale runs the scene model at a lower resolution; the output keeps the input size."""
    full, fast = tmp_path / "full", tmp_path / "fast"
    for out, extra in ((full, []), (fast, ["--background-scale", "0.5"])):
        assert main(["stylize", str(selfies[0]), "-o", str(out), "--format", "png",
                     *models(weights, scene=True), *extra]) == 0
    name = f"{selfies[0].stem}_facetoon.png"
    with Image.open(full / name) as a, Image.open(fast / name) as b, Image.open(selfies[0]) as src:
        assert a.size == b.size == src.size
        diff = np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean()
    assert 0.0 < diff < 40.0  # a different (lower-resolution) scene pass, but the same picture
    rc = main(["stylize", str(selfies[0]), "-o", str(tmp_path / "x"), "--background-scale", "1.5",
               *models(weights, scene=True)])
    err = capsys.readouterr().err
    assert rc != 0 and "--background-scale" in err and len(err.strip().splitlines()) == 1


def test_cartoongan_background(shared, weights, selfies, tmp_path) -> None:
    rc = main(["stylize", str(selfies[1]), "-o", str(tmp_path), "--face-weights", str(weights["face"]),
               "--background", "cartoongan", "--background-weights",
               str(shared / "models" / "cartoongan" / "Hayao_net_G_float.pth")])
    assert rc == 0 and (tmp_path / f"{selfies[1].stem}_facetoon.jpg").is_file()


def test_no_faces_runs_the_scene_model_alone(weights, selfies, tmp_path, capsys) -> None:
    """--no-faces: the scene model stylizes the whole photo (no face pasted on top), as
    Stylizer(face_model=None); contradicting options are one-line errors."""
    out_scene, out_both = tmp_path / "scene", tmp_path / "both"
    assert main(["stylize", str(selfies[0]), "-o", str(out_scene), "--format", "png", "--no-faces",
                 "--background-weights", str(weights["scene"])]) == 0
    assert main(["stylize", str(selfies[0]), "-o", str(out_both), "--format", "png",
                 *models(weights, scene=True)]) == 0
    name = f"{selfies[0].stem}_facetoon.png"
    with Image.open(out_scene / name) as a, Image.open(out_both / name) as b:
        scene, both = np.asarray(a, np.float32), np.asarray(b, np.float32)
    st = facetoon.Stylizer(face_model=None, background_model="animegan", background_weights=weights["scene"])
    expected = np.asarray(st.stylize(selfies[0]), np.float32)
    assert np.abs(scene - expected).max() <= 1.0  # the scene model's picture, JPEG/PNG aside
    assert np.abs(scene - both).mean() > 1.0  # a face was pasted in the other one
    capsys.readouterr()
    for extra, clash in ((["--face-weights", str(weights["face"])], "--face-weights"),
                         (["--require-face"], "--require-face"), (["--background", "none"], "--background none")):
        assert main(["stylize", str(selfies[0]), "-o", str(tmp_path / "x"), "--no-faces", *extra]) != 0
        err = capsys.readouterr().err
        assert f"--no-faces and {clash}" in err and len(err.strip().splitlines()) == 1, err


def test_require_face_counts_as_failure(weights, tmp_path, capsys) -> None:
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((64, 96, 3), 200, np.uint8)).save(flat)
    rc = main(["stylize", str(flat), "-o", str(tmp_path / "out"), "--require-face", *models(weights)])
    assert rc == 1 and "no face found" in capsys.readouterr().err
    rc = main(["stylize", str(flat), "-o", str(tmp_path / "out"), *models(weights)])
    assert rc == 0  # without --require-face: the scene alone, and a warning


def test_missing_weights_is_one_line_error(tmp_path, selfies) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FACETOON_WEIGHTS": str(tmp_path / "empty")}
    proc = subprocess.run([sys.executable, "-m", "facetoon", "stylize", str(selfies[0]), "-o", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facetoon: error: "), proc.stderr
    assert "ugatit-selfie2anime" in lines[0] and "--face-weights" in lines[0]


def test_importing_facetoon_first_enables_huge_pages_for_torch() -> None:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    code = "import os, facetoon; print(os.environ.get('THP_MEM_ALLOC_ENABLE'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "1"
    env["THP_MEM_ALLOC_ENABLE"] = "0"  # an explicit user value wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "0"


def test_module_imports_no_torch() -> None:
    code = "import sys, facetoon.cli.stylize; assert 'torch' not in sys.modules and 'cv2' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _scene_weights_error(weights: dict[str, Path], tmp_path: Path, capsys, *options: str) -> str:
    """The one-line error of `facetoon stylize` with these scene model options."""
    capsys.readouterr()
    rc = main(["stylize", str(ASTRONAUT), "-o", str(tmp_path / "out"), "--face-weights", str(weights["face"]),
               *options])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and err.startswith("facetoon: error: "), err
    # the options' names, not Python's arguments nor the generic list of options
    reason = err.replace(str(tmp_path), "TMP")
    assert "background_model" not in reason and "background_weights" not in reason, err
    assert "[command line" not in reason, err
    return err


def test_background_weights_of_the_wrong_kind_say_what_to_pass(weights, tmp_path, capsys) -> None:
    """--background-weights given a weights FILE, a training checkpoint or run folder, or a folder
    of the other scene model: the error says what it is and which option or command to use."""
    scene = weights["scene"]
    err = _scene_weights_error(weights, tmp_path, capsys, "--background-weights", str(scene / "model.safetensors"))
    assert f"pass its folder {scene}" in err and "unknown name" not in err, err
    # a facetoon training run (torch.save of the dict facetoon.train saves; tiny states)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.toml").write_text('[train]\nversion = "v2"\n')
    checkpoint = run / "checkpoints" / "step_00000002.pt"
    torch.save({"step": 2, "trainer": {"gen": {}, "disc": {}}, "config": {"version": "v2"}, "ema": None},
               checkpoint)
    export = f"export it first with `facetoon export animegan {run} OUT` and pass OUT as --background-weights"
    err = _scene_weights_error(weights, tmp_path, capsys, "--background-weights", str(checkpoint))
    assert "a facetoon training checkpoint" in err and export in err, err
    err = _scene_weights_error(weights, tmp_path, capsys, "--background-weights", str(run))
    assert "a facetoon training run folder" in err and export in err and "config.json" not in err, err
    # a converted CartoonGAN folder without --background cartoongan, and the reverse
    cartoon = save_pretrained(create_model("cartoongan", n_res_blocks=1), tmp_path / "cartoongan")
    err = _scene_weights_error(weights, tmp_path, capsys, "--background-weights", str(cartoon))
    assert "holds a 'cartoongan' model" in err and "use --background cartoongan" in err, err
    err = _scene_weights_error(weights, tmp_path, capsys, "--background", "cartoongan", "--background-weights",
                               str(scene))
    assert "holds a 'animegan' model" in err and "use --background animegan" in err, err
    err = _scene_weights_error(weights, tmp_path, capsys, "--background", "cartoongan")
    assert "--background cartoongan needs --background-weights" in err, err


def test_background_weights_official_cartoongan_without_background_cartoongan(
        shared, weights, tmp_path, capsys) -> None:
    hayao = shared / "models" / "cartoongan" / "Hayao_net_G_float.pth"
    err = _scene_weights_error(weights, tmp_path, capsys, "--background-weights", str(hayao))
    assert "these are official CartoonGAN weights: use --background cartoongan" in err, err


def test_background_weights_help_says_what_it_takes(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    start = text.index("--background-weights PATH weights")  # the option's help, not the usage line
    help_text = text[start:text.index("--background-scale", start)]
    for needle in ("weights folder", "export", "AnimeGANv2", "PyTorch port", ".pt/.pth", "<Style>_net_G_float.pth"):
        assert needle in help_text, (needle, help_text)
