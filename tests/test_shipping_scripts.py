"""scripts/ship_weights.py and scripts/make_kid_curve.py: how the training history of the default
weights is stitched across sessions and drawn (developer scripts; run here on real files on disk)."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))  # the scripts import each other as a script run would

import make_kid_curve  # noqa: E402
import ship_weights  # noqa: E402


def _session(first: int, last: int, size: int | None) -> dict:
    row = {"from_step": first, "to_step": last, "train_hours_total": last / 1000, "date": "2026-12-06",
           "cpu": "test", "precision": "fp32"}
    if size is not None:
        row["img_size"] = size
    return row


def test_training_phases_group_consecutive_sessions_in_step_order() -> None:
    rows = [_session(18000, 20376, 256), _session(0, 280, 128), _session(280, 2555, None),
            _session(2555, 18000, 128), _session(20376, 21000, 256)]
    assert ship_weights.training_phases(rows) == [(128, "configs/ugatit_selfie2anime_cpu.toml", 0, 18000),
                                                  (256, "configs/ugatit_selfie2anime_cpu_256.toml", 18000, 21000)]
    text = ship_weights.phases(rows).splitlines()
    assert text == ["- steps 0 -> 18000: 128 px, `configs/ugatit_selfie2anime_cpu.toml`",
                    "- steps 18000 -> 21000: 256 px, `configs/ugatit_selfie2anime_cpu_256.toml`"]


def test_a_new_config_at_the_same_size_is_a_new_phase(tmp_path: Path) -> None:
    """Rows name their config file (the committed one all of whose settings the run has); a second
    lr cycle at 256 px is a phase of its own, on the card and on the KID curve."""
    def train(name: str) -> dict:
        return tomllib.loads((REPO / "configs" / name).read_text())["train"]

    cycle2, phase256 = train("ugatit_selfie2anime_cpu_256_cycle2.toml"), train("ugatit_selfie2anime_cpu_256.toml")
    assert ship_weights.committed_config_file("ugatit", cycle2) == "configs/ugatit_selfie2anime_cpu_256_cycle2.toml"
    assert ship_weights.committed_config_file("ugatit", {**phase256, "init_from": "x"}) == \
        "configs/ugatit_selfie2anime_cpu_256.toml"
    assert ship_weights.committed_config_file("ugatit", {**phase256, "iterations": 12345}) is None
    rows = [_session(0, 18000, 128), _session(18000, 27000, 256),
            {**_session(27000, 28000, 256), "config_file": "configs/ugatit_selfie2anime_cpu_256_cycle2.toml"}]
    assert ship_weights.phases(rows).splitlines()[-1] == \
        "- steps 27000 -> 28000: 256 px, `configs/ugatit_selfie2anime_cpu_256_cycle2.toml`"
    path = tmp_path / "sessions.jsonl"
    ship_weights.write_jsonl(path, rows)
    assert make_kid_curve.phase_starts(path) == [(18000, "256 px"), (27000, "new lr cycle")]
    # record_session writes the file name into the run's row (the other rows are kept as they are)
    meta = {"step": 28500, "train_hours": 30.0, "config": {"img_size": 256}}
    got = ship_weights.record_session(path, 27001, meta, "fp32", "configs/ugatit_selfie2anime_cpu_256_cycle2.toml")
    assert [(r["from_step"], r["to_step"], r.get("config_file")) for r in got] == [
        (0, 18000, None), (18000, 27000, None), (27000, 28500, "configs/ugatit_selfie2anime_cpu_256_cycle2.toml")]


def test_phases_name_an_unknown_size_without_a_config_file() -> None:
    assert ship_weights.phases([_session(0, 10, 64)]) == "- steps 0 -> 10: 64 px, `the run config below`"
    assert ship_weights.training_phases([]) == []


def test_phase_starts_reads_the_size_changes_from_sessions_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "sessions.jsonl"
    ship_weights.write_jsonl(path, [_session(0, 100, 128), _session(100, 200, 128), _session(200, 300, 256)])
    assert make_kid_curve.phase_starts(path) == [(200, "256 px")]
    assert make_kid_curve.phase_starts(tmp_path / "missing.jsonl") == []


def _write_losses(path: Path, steps: range, fields: tuple[str, ...] = ("step", "g_total")) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields))
        w.writeheader()
        for s in steps:
            w.writerow({k: (s if k == "step" else s / 10) for k in fields})


def test_merge_losses_keeps_earlier_sessions_and_thins_this_run(tmp_path: Path) -> None:
    committed, run = tmp_path / "losses_every50.csv", tmp_path / "losses.csv"
    _write_losses(committed, range(0, 1001, 50))  # earlier sessions, up to step 1000
    _write_losses(run, range(801, 1301), fields=("step", "g_total", "lr"))  # this run restarted at 801
    n, first = ship_weights.merge_losses(run, committed, last_step=1200)
    assert first == 801
    with committed.open(newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    # committed rows before the run's first step, then every 50th row of the run up to the shipped step
    assert steps == list(range(0, 801, 50)) + list(range(850, 1201, 50))
    assert n == len(rows)
    assert rows[0]["lr"] == "" and rows[-1]["lr"] != ""  # a column new in this run: blank in older rows


def test_make_kid_curve_draws_the_committed_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    stats = tmp_path / "stats.jsonl"
    ship_weights.write_jsonl(stats, [{"step": s, "kid_x100": k, "train_hours": s / 1000}
                                     for s, k in ((1000, 150.0), (2000, 120.0), (3000, 100.0))])
    ship_weights.write_jsonl(tmp_path / "sessions.jsonl", [_session(0, 2000, 128), _session(2000, 3000, 256)])
    _write_losses(tmp_path / "losses_every50.csv", range(0, 3001, 50), fields=("step", "lr"))
    out = tmp_path / "curve.png"
    assert make_kid_curve.main(["--stats", str(stats), "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 500 and im.height > 200
    # the trend: an exact power law is recovered, and the script prints where it reaches the bar
    # (a KID <= 0, which the unbiased estimator can give, is left out of the log-log fit; --fit-to ends
    # the window before the outlier of step 6400)
    exact = [{"step": s, "kid_x100": 1000.0 * s ** -0.5} for s in (100, 400, 1600)]
    ship_weights.write_jsonl(stats, [*exact, {"step": 3200, "kid_x100": -0.5}, {"step": 6400, "kid_x100": 90.0}])
    assert make_kid_curve.main(["--stats", str(stats), "--out", str(out), "--fit-from", "100", "--fit-to", "3200"]) == 0
    c, b = make_kid_curve.power_law_fit([100, 400, 1600], [100.0, 50.0, 25.0])
    assert (c, b) == (pytest.approx(1000.0), pytest.approx(-0.5))
    assert make_kid_curve.steps_to_reach(40.0, c, b) == pytest.approx(625.0)
    assert make_kid_curve.steps_to_reach(40.0, 1.0, 0.1) == float("inf")
    assert "reaches 40 at step 625 and 15 at step 4,444" in capsys.readouterr().out


def test_make_kid_curve_fails_cleanly_without_validation_rows(tmp_path: Path, capsys) -> None:
    stats = tmp_path / "stats.jsonl"
    stats.write_text(json.dumps({"step": 10, "d_total": 1.0}) + "\n")
    assert make_kid_curve.main(["--stats", str(stats), "--out", str(tmp_path / "c.png")]) == 1
    assert "no kid_x100 rows" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


def test_the_card_says_which_step_the_committed_state_is_of(tmp_path: Path) -> None:
    """The watcher ships weights with --no-state: the card then names the step of the state left in
    training/ (older or newer than the weights), read from the state's generator config."""
    gen = tmp_path / "state" / "a2b"
    gen.mkdir(parents=True)
    (gen / "config.json").write_text(json.dumps({"arch": "ugatit_generator", "config": {}, "meta": {"step": 26010}}))
    assert ship_weights.committed_state_step(gen, 27000) == 26010
    assert ship_weights.committed_state_step(tmp_path / "missing", 27000) == 27000
    older = ship_weights.continued({"step": 27000, "state_step": 26010})
    assert "still that of step 26010, older than these weights" in older
    newer = ship_weights.continued({"step": 20000, "state_step": 26010})
    assert "These weights are step 20000" in newer and "went on to step 26010" in newer
    assert ship_weights.continued({"step": 27000, "state_step": 27000}) == ""


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_replace_folder_swaps_in_a_complete_copy(tmp_path: Path) -> None:
    """training/<name>/state is the only warm-start source of a new machine: it is replaced by a copy
    made beside it and swapped in, never deleted before the new one is complete."""
    src, dst = tmp_path / "export", tmp_path / "training" / "state"
    for name in ("a2b", "ema_b2a", "disc_ga"):
        (src / name).mkdir(parents=True)
        (src / name / "config.json").write_text(f"new {name}")
    (src / "a2b" / "ema_b2a").write_text("a file deeper down with a skipped name stays")
    ship_weights.replace_folder(src, dst, skip=("ema_b2a",))  # no state yet
    want = {"a2b/config.json": "new a2b", "a2b/ema_b2a": "a file deeper down with a skipped name stays",
            "disc_ga/config.json": "new disc_ga"}
    assert _tree(dst) == want
    # an existing state is replaced as a whole (a folder gone from the export is gone), nothing left beside it
    (dst / "b2a").mkdir()
    (dst / "b2a" / "config.json").write_text("old b2a")
    ship_weights.replace_folder(src, dst, skip=("ema_b2a",))
    assert _tree(dst) == want
    assert sorted(p.name for p in dst.parent.iterdir()) == ["state"]


def test_replace_folder_keeps_the_old_state_when_the_copy_or_the_swap_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    src, dst = tmp_path / "export", tmp_path / "training" / "state"
    (src / "a2b").mkdir(parents=True)
    (src / "a2b" / "model.safetensors").write_text("new")
    (dst / "a2b").mkdir(parents=True)
    (dst / "a2b" / "model.safetensors").write_text("old")
    real_copytree = shutil.copytree

    def disk_full(*args, **kwargs):  # the copy writes its files, then fails
        real_copytree(*args, **kwargs)
        if Path(args[0]) == src:  # (copytree calls itself for sub-folders)
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copytree", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ship_weights.replace_folder(src, dst)
    assert _tree(dst) == {"a2b/model.safetensors": "old"}
    assert sorted(p.name for p in dst.parent.iterdir()) == ["state"]  # the partial copy is removed
    monkeypatch.setattr(shutil, "copytree", real_copytree)

    real_rename = Path.rename

    def rename(self: Path, target):  # moving the new copy in fails: the old state goes back
        if self.name.startswith(".state.new-"):
            raise OSError("rename failed")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        ship_weights.replace_folder(src, dst)
    assert _tree(dst) == {"a2b/model.safetensors": "old"}
    assert sorted(p.name for p in dst.parent.iterdir()) == ["state"]


def test_average_snapshots_averages_and_labels_the_weights(tmp_path: Path, monkeypatch) -> None:
    """Two exported generators of one run: the average's parameters are their mean, its meta names
    the snapshots (newest run metadata), and the model card says what the weights are."""
    import subprocess

    import torch

    from facetoon.models import create_model, load_pretrained, save_pretrained
    from facetoon.models.serialization import read_config

    cfg = {"img_size": 32, "ngf": 8, "n_res": 2, "light": True}
    folders = []
    for step, seed in ((2000, 0), (1000, 1)):
        torch.manual_seed(seed)
        folder = tmp_path / f"step_{step}"
        save_pretrained(create_model("ugatit_generator", **cfg), folder, dtype=torch.float16,
                        meta={"step": step, "train_hours": step / 1000, "config": {"batch_size": 1}})
        folders.append(folder)
    out = tmp_path / "avg"
    done = subprocess.run([sys.executable, str(SCRIPTS / "average_snapshots.py"), *map(str, folders),
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a, b, avg = (load_pretrained(f).state_dict() for f in (*folders, out))
    for k in avg:
        assert torch.allclose(avg[k], ((a[k] + b[k]) / 2).half().float(), atol=1e-3), k
    meta = read_config(out)["meta"]
    assert meta["snapshot_steps"] == [1000, 2000] and meta["step"] == 2000 and meta["train_hours"] == 2.0
    assert "uniform average of 2 snapshots" in meta["weights"]
    assert "uniform average of 2 snapshots" in ship_weights.shipped_weights(meta)
    assert "average snapshots of steps 1000-2000" in ship_weights.averaged_over(meta)
    # a snapshot of another architecture is refused with one line, no traceback
    save_pretrained(create_model("ugatit_generator", **{**cfg, "ngf": 16}), tmp_path / "other",
                    meta={"step": 3000, "config": {}})
    bad = subprocess.run([sys.executable, str(SCRIPTS / "average_snapshots.py"), str(folders[0]),
                          str(tmp_path / "other")], capture_output=True, text=True)
    assert bad.returncode == 2 and "another architecture" in bad.stderr and "Traceback" not in bad.stderr


def test_average_snapshots_scores_on_the_validation_split(tmp_path: Path, shared: Path) -> None:
    """With --data, the average and each snapshot are scored on the trainer's held-out images (real
    selfie2anime files, 4 of them here) and the scores are appended to the record, with the sha256
    of each snapshot's weights; a later --each keeps the score of a snapshot whose weights file was
    scored before on as many images (--rescore, or another number of images, scores it again)."""
    import subprocess

    import torch

    from facetoon.models import create_model, save_pretrained

    data = shared / "data" / "selfie2anime"
    if not (data / "trainA").is_dir():
        pytest.skip(f"{data} is absent")
    run_cfg = {"img_size": 32, "holdout": 8, "holdout_seed": 1234, "kid_images": 8, "kid_backend": "litert"}
    folders = []
    for step in (1000, 2000):
        torch.manual_seed(step)
        folder = tmp_path / f"step_{step}"
        save_pretrained(create_model("ugatit_generator", img_size=32, ngf=8, n_res=2, light=True), folder,
                        meta={"step": step, "train_hours": 1.0, "config": run_cfg})
        folders.append(folder)
    record = tmp_path / "averages.jsonl"
    done = subprocess.run([sys.executable, str(SCRIPTS / "average_snapshots.py"), *map(str, folders), "--data",
                           str(data), "--each", "--kid-images", "4", "--record", str(record), "--out",
                           str(tmp_path / "avg"), "--samples", "3"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["snapshot_steps"] == [1000, 2000] and rows[0]["kid_images"] == 4
    assert set(rows[0]["each"]) == {"1000", "2000"} and rows[0]["kid_x100"] > 0  # untrained: far from anime
    assert (tmp_path / "avg" / "samples.jpg").is_file()
    assert rows[0]["sha256"]["1000"] == hashlib.sha256((folders[0] / "model.safetensors").read_bytes()).hexdigest()

    # step 2000's weights change: only that snapshot is scored again
    torch.manual_seed(7)
    save_pretrained(create_model("ugatit_generator", img_size=32, ngf=8, n_res=2, light=True), folders[1],
                    meta={"step": 2000, "train_hours": 1.0, "config": run_cfg})

    def again(*extra: str) -> tuple[str, dict]:
        done = subprocess.run([sys.executable, str(SCRIPTS / "average_snapshots.py"), *map(str, folders), "--data",
                               str(data), "--each", "--record", str(record), *extra], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout, json.loads(record.read_text().splitlines()[-1])

    out, row = again("--kid-images", "4")
    assert "step 1000: KIDx100" in out and "(recorded)" in out.split("step 2000")[0] and "(recorded)" not in \
        out.split("step 2000")[1]
    assert row["each"]["1000"] == rows[0]["each"]["1000"] and row["sha256"]["1000"] == rows[0]["sha256"]["1000"]
    assert row["sha256"]["2000"] != rows[0]["sha256"]["2000"]
    out, _ = again("--kid-images", "4", "--rescore")
    assert "(recorded)" not in out
    out, _ = again("--kid-images", "6")  # other images: nothing recorded applies
    assert "(recorded)" not in out


def test_the_scene_models_config_file_is_the_one_whose_every_setting_the_run_has(tmp_path: Path) -> None:
    """The AnimeGAN card names the committed config a run came from: the file all of whose
    settings (but init_from) the run's resolved config has; the two scene configs differ in
    init_steps and teacher_init, so each run is told apart."""
    first = tomllib.loads((REPO / "configs" / "animegan_anime_cpu.toml").read_text())["train"]
    distil = tomllib.loads((REPO / "configs" / "animegan_anime_cpu_distil.toml").read_text())["train"]
    resolved = {"seed": 0, "adv_g": -1.0, "holdout": 0}  # settings no config file names
    assert ship_weights.committed_config_file("animegan", {**resolved, **first, "init_from": "x"}) == \
        "configs/animegan_anime_cpu.toml"
    assert ship_weights.committed_config_file("animegan", {**resolved, **distil}) == \
        "configs/animegan_anime_cpu_distil.toml"
    assert ship_weights.committed_config_file("animegan", {**resolved, **distil, "teacher_weight": 5.0}) is None
    # settings a resume may change (RUNTIME_ONLY_KEYS) do not hide the file
    assert ship_weights.committed_config_file("animegan", {**resolved, **distil, "checkpoint_every": 1000,
                                              "precision": "fp32"}) == "configs/animegan_anime_cpu_distil.toml"


def test_scene_scores_are_recorded_and_tabled(tmp_path: Path) -> None:
    """score_scene_model.py --record appends a row per generator (with the training step of a
    weights folder); ship_weights.py tables them on the scene model's card."""
    import score_scene_model

    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"arch": "animegan", "meta": {"step": 2500}}))
    path = tmp_path / "deep" / "scores.jsonl"
    score_scene_model.record(path, str(folder), 101.234, "a run at step 2500")
    score_scene_model.record(path, "teacher.pth", 62.9)
    rows = ship_weights.read_jsonl(path)
    assert [(r["step"], r["kid_x100"]) for r in rows] == [(2500, 101.23), (None, 62.9)]
    table = ship_weights.scene_scores_table(rows).splitlines()
    assert table[2] == f"| `{folder}` | a run at step 2500 | 2500 | 101.2 | {rows[0]['date']} |"
    assert table[3].startswith("| `teacher.pth` | - | - | 62.9 |")
