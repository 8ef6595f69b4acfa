"""Tests of the ``facetoon`` command line, run as ``python -m facetoon`` in a subprocess: help,
version, exit codes, one-line errors without traceback, ``facetoon info``, and the cost of
``import facetoon``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetoon import __version__

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "facetoon", *args],
        capture_output=True, text=True, cwd=REPO, env=full_env, timeout=300,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = lines[0]
    assert line.startswith("facetoon: error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def test_help_lists_info() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: facetoon" in proc.stdout
    assert "info" in proc.stdout
    assert proc.stderr == ""


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"facetoon {__version__}"


def test_usage_errors_exit_2() -> None:
    assert run_cli().returncode == 2  # no command: help on stderr
    proc = run_cli("--no-such-option")
    assert proc.returncode == 2
    assert "unrecognized arguments" in proc.stderr or "error" in proc.stderr
    assert run_cli("no-such-command").returncode == 2


def test_info_reports_environment() -> None:
    proc = run_cli("info", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    import torch

    assert info["facetoon"] == __version__
    assert info["torch"] == torch.__version__
    assert info["device"] in ("cpu", "cuda")
    assert set(info["landmark_models"]) == {"landmarks_5", "landmarks_68", "cnn_detector"}
    for path in info["landmark_models"].values():
        assert path is None or Path(path).is_file()
    assert info["weights_dir"]
    assert info["max_pixels"] == 80_000_000 or os.environ.get("FACETOON_MAX_PIXELS")
    text = run_cli("info", env={"FACETOON_WEIGHTS": str(REPO / "weights")})
    assert text.returncode == 0, text.stderr
    for key in ("facetoon", "torch", "device", "dlib landmarks_5", "weights folder", "max pixels"):
        assert key in text.stdout, key
    assert "from FACETOON_WEIGHTS" in text.stdout


def test_info_finds_dlib_models_if_installed() -> None:
    import importlib.util

    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models is not installed")
    from facetoon.cli.info import landmark_models

    found = landmark_models()
    assert found["landmarks_5"] and found["landmarks_5"].endswith("shape_predictor_5_face_landmarks.dat")


def test_info_image(tmp_path: Path) -> None:
    rgba = np.zeros((30, 50, 4), np.uint8)
    rgba[..., 3] = 128
    path = tmp_path / "портрет.png"
    exif = Image.Exif()
    exif[274] = 6
    Image.fromarray(rgba).save(path, exif=exif)
    proc = run_cli("info", "--image", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"{path}: PNG 50x30 RGBA -> RGB 30x50; EXIF orientation 6; transparent, composited on white"
    )
    proc = run_cli("info", "--json", "--image", str(path))
    info = json.loads(proc.stdout)
    assert info["stored_size"] == [50, 30] and info["rgb_shape"] == [50, 30, 3]
    assert info["rgb_mean"] == [127.0, 127.0, 127.0]  # black at alpha 128 over white


def test_cli_uses_only_public_names_of_other_modules() -> None:
    """The commands import public API only (no ``from ..io import _private``)."""
    import ast

    for file in sorted((REPO / "facetoon" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{file.name} imports {private} from {node.module}"


def test_info_bundled_example() -> None:
    proc = run_cli("info", "--image", "examples/astronaut.png")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "examples/astronaut.png: PNG 512x512 RGB -> RGB 512x512"


def test_error_missing_image_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    assert_one_line_error(run_cli("info", "--image", str(missing)), str(missing), "no such file")


def test_error_corrupt_and_oversized_images(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    assert_one_line_error(run_cli("info", "--image", str(corrupt)), str(corrupt))
    big = tmp_path / "big.png"
    Image.new("RGB", (40, 30)).save(big)
    line = assert_one_line_error(
        run_cli("info", "--image", str(big), env={"FACETOON_MAX_PIXELS": "1000"}), str(big)
    )
    assert "40x30 = 1,200 pixels" in line and "budget of 1,000" in line
    bad_env = run_cli("info", "--image", str(big), env={"FACETOON_MAX_PIXELS": "many"})
    assert_one_line_error(bad_env, "FACETOON_MAX_PIXELS")


def test_info_several_images_goes_past_a_bad_one(tmp_path: Path) -> None:
    """One unreadable image among several is reported; the others are still described; exit 1."""
    good, rotated, missing = tmp_path / "good.png", tmp_path / "rotated.jpg", tmp_path / "missing.jpg"
    Image.new("RGB", (8, 6), (10, 20, 30)).save(good)
    exif = Image.Exif()
    exif[274] = 6
    Image.new("RGB", (8, 6)).save(rotated, exif=exif)
    proc = run_cli("info", "--image", str(good), "--image", str(missing), "--image", str(rotated))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"{good}: PNG 8x6 RGB -> RGB 8x6",
                                        f"{rotated}: JPEG 8x6 RGB -> RGB 6x8; EXIF orientation 6"]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("facetoon: error: ")]
    assert len(errors) == 2 and str(missing) in errors[0] and "1 of 3 images" in errors[1]
    assert "Traceback" not in proc.stderr
    proc = run_cli("info", "--json", "--image", str(missing), "--image", str(good))
    assert proc.returncode == 1 and [d["path"] for d in json.loads(proc.stdout)] == [str(good)]


def test_debug_shows_traceback(tmp_path: Path) -> None:
    proc = run_cli("--debug", "info", "--image", str(tmp_path / "missing.png"))
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "InvalidImageError" in proc.stderr


def test_import_facetoon_is_fast_and_light() -> None:
    code = (
        "import sys, time\n"
        "t0 = time.perf_counter()\n"
        "import facetoon\n"
        "dt = time.perf_counter() - t0\n"
        "heavy = sorted(m for m in ('torch', 'cv2', 'dlib') if m in sys.modules)\n"
        "print(f'{dt:.4f} {\",\".join(heavy) or \"-\"}')\n"
    )
    times = []
    for _ in range(3):  # best of three: the machine runs a niced training job beside the tests
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
        seconds, heavy = out.stdout.split()
        assert heavy == "-", f"import facetoon imported {heavy}"
        times.append(float(seconds))
    assert min(times) < 1.0, times


def test_cli_parser_does_not_import_heavy_modules() -> None:
    """Building the parser imports every subcommand module; none may pull in torch/cv2/dlib."""
    code = (
        "import sys\n"
        "from facetoon.cli import build_parser\n"
        "build_parser()\n"
        "print(','.join(sorted(m for m in ('torch', 'cv2', 'dlib') if m in sys.modules)) or '-')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert out.stdout.strip() == "-", f"facetoon --help imports {out.stdout.strip()}"


def test_a_closed_stdout_ends_the_command_quietly() -> None:
    """``facetoon faces x.jpg --json | head -c 1``: the reader goes away before the output is
    written; the command stops with the SIGPIPE status (141) and no error line or traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetoon", "faces", str(REPO / "examples" / "astronaut.png"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # nobody reads: the first write fails with EPIPE
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141, err
    assert err.strip() == "", err


@pytest.mark.parametrize(("args", "line"), [
    (["stylize", "x.png", "--strength", "abc"],
     "facetoon stylize: error: argument --strength: invalid float value: 'abc' (see facetoon stylize --help)"),
    (["stylize", "x.png", "--format", "gif"], "facetoon stylize: error: argument --format: invalid choice: 'gif'"),
    (["faces", "x.png", "--landmarks", "7"], "facetoon faces: error: argument --landmarks: invalid choice: '7'"),
    (["faces", "x.png", "--no-such-option"],
     "facetoon faces: error: unrecognized arguments: --no-such-option (see facetoon faces --help)"),
    (["no-such-command"], "facetoon: error: argument COMMAND: invalid choice: 'no-such-command'"),
])
def test_usage_errors_are_one_line(args: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Like every other error: one line naming the problem (no usage block), exit status 2."""
    from facetoon.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(line), err


def test_debug_and_quiet_also_after_the_command(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.png")
    proc = run_cli("info", "--image", missing, "--debug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "InvalidImageError" in proc.stderr
    # given before the command, not undone by its absence after it
    proc = run_cli("--debug", "-q", "info", "--image", missing)
    assert "Traceback" in proc.stderr
    proc = run_cli("info", "--image", str(REPO / "examples" / "astronaut.png"), "-q")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
