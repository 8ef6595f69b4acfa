"""Ship a default model from a training run into the repository.

From the latest (or the given) checkpoint of RUN_DIR, for MODEL = ``ugatit`` (the face model) or ``animegan``
(the scene model), writes:

* ``weights/<name>/``: the inference generator (fp16 safetensors + config.json; U-GAT-IT: the
  A->B direction; the weight average when the run has ``ema_decay > 0``), its model card
  ``MODEL_CARD.md`` and ``samples.jpg`` (the grid of the shipped checkpoint);
* ``training/<name>/``: what the next session needs to carry on when the full checkpoint is gone:
  ``state/`` (all networks, fp16, and the inference generator's weight average; U-GAT-IT warm-starts from it with
  ``--set init_from=training/ugatit-selfie2anime/state``; the new state is copied beside the old one
  and swapped in, see :func:`replace_folder`), ``stats.jsonl`` (validation history,
  if any), ``losses_every50.csv`` (every 50th loss row) and ``config.toml``; ``sessions.jsonl``
  (one row per training session: steps, hours, the CPU and the precision it ran with).

A run warm-started on a new machine has only its own losses and validations: the committed
history of earlier sessions is kept and the run's rows are merged after it (by step).

Usage: python scripts/ship_weights.py {ugatit,animegan} RUN_DIR [--data DATA_DIR] [--checkpoint FILE]
                                     [--weights-checkpoint FILE | --keep-weights] [--no-state]

``--keep-weights`` ships only the run's state and histories into ``training/`` and leaves the
generator in ``weights/`` as it is (when no step of the run beats it yet); the model card is
rewritten with the new history. ``--no-state`` leaves ``training/<name>/state`` as it is (the
validation watcher's mode: the state is committed once a session, by hand, so none may wait
uncommitted in the working tree for a ``git commit -a`` to sweep in).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAMES = {"ugatit": "ugatit-selfie2anime", "animegan": "animegan-anime"}
GENERATOR = {"ugatit": "a2b", "animegan": "generator"}  # the inference network in an export
# the config file of the face model's sessions recorded before sessions.jsonl named it, by image size
LEGACY_UGATIT_CONFIGS = {128: "configs/ugatit_selfie2anime_cpu.toml", 256: "configs/ugatit_selfie2anime_cpu_256.toml"}


def committed_config_file(model: str, config: dict) -> str | None:
    """The committed ``configs/<model>_*.toml`` a run's resolved config comes from: the one all of
    whose settings the run has, but those a resume may change (``RUNTIME_ONLY_KEYS``: schedule of
    checkpoints and samples, precision, ``init_from``); ``None`` if none does. (The face model's
    phases differ in ``img_size``, ``iterations`` or ``decay_start``; the scene configs in
    ``init_steps`` and ``teacher_init``.)"""
    from facetoon.train.loop import RUNTIME_ONLY_KEYS

    for path in sorted((REPO / "configs").glob(f"{model}_*.toml")):
        train = tomllib.loads(path.read_text()).get("train", {})
        if all(config.get(k) == v for k, v in train.items() if k not in RUNTIME_ONLY_KEYS):
            return path.relative_to(REPO).as_posix()
    return None


def scene_scores_table(rows: list[dict]) -> str:
    """The rows of ``scripts/score_scene_model.py --record`` as a Markdown table."""
    lines = ["| generator | what it is | its step | KIDx100 | date |", "|---|---|---|---|---|"]
    for r in rows:
        step = "-" if r.get("step") is None else r["step"]
        lines.append(f"| `{r['generator']}` | {r.get('label') or '-'} | {step} | {r['kid_x100']:.1f} | {r['date']} |")
    return "\n".join(lines)


def session_config_file(row: dict) -> str | None:
    """The config file a ``sessions.jsonl`` row trained with (older rows: by their image size)."""
    return row.get("config_file") or LEGACY_UGATIT_CONFIGS.get(row.get("img_size", 0))


def export(model: str, run_dir: Path, out: Path, data: str | None, samples: Path,
           checkpoint: Path | None = None) -> None:
    cmd = [sys.executable, "-m", "facetoon", "-q", "export", model, str(run_dir), str(out), "--fp16",
           "--discriminators", "--samples", str(samples)]
    if data:
        cmd += ["--data", data]
    if checkpoint:
        cmd += ["--checkpoint", str(checkpoint)]
    subprocess.run(cmd, check=True)


def checkpoint_meta(path: Path) -> dict:
    """Step, training hours and image size of a training checkpoint, without exporting it.

    ``--no-state`` with ``--weights-checkpoint`` needs only these of the state checkpoint (to cut the
    histories at its step); memory-mapping reads them in about a second instead of a ~20 s export.
    """
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return {"step": int(ckpt["step"]), "train_hours": round(float(ckpt["train_seconds"]) / 3600, 3),
            "config": {"img_size": ckpt["config"].get("img_size")}}


def replace_folder(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    """Replace the folder ``dst`` by a copy of ``src`` (without its top-level entries named in
    ``skip``) so that a complete folder exists at every moment: the copy is made in a temporary
    sibling ``.<name>.new-*``, then the old folder is renamed away (``.<name>.old-*``), the copy
    renamed in, and only then the old one deleted. A failed copy (disk full, interruption) leaves
    ``dst`` as it was; a failed rename puts the old folder back."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{dst.name}.new-", dir=dst.parent))
    old = new.with_name(new.name.replace(".new-", ".old-", 1))
    try:
        shutil.copytree(src, new, dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if n in skip] if Path(folder) == src else [])
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if not dst.exists():
        new.rename(dst)
        return
    dst.rename(old)
    try:
        new.rename(dst)
    except BaseException:
        old.rename(dst)
        shutil.rmtree(new, ignore_errors=True)
        raise
    shutil.rmtree(old)


def read_csv(path: Path) -> tuple[list[dict], list[str]]:
    if not path.is_file():
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader), list(reader.fieldnames or [])


def merge_losses(src: Path, dst: Path, last_step: int, every: int = 50) -> tuple[int, int]:
    """Every ``every``-th loss row of ``src`` up to ``last_step`` (the shipped step), after the
    committed rows of ``dst`` of earlier steps.

    Returns (rows written, first step of this run).
    """
    new, new_fields = read_csv(src)
    new = [r for r in new if int(r["step"]) <= last_step]
    first = min((int(r["step"]) for r in new), default=0)
    old, old_fields = read_csv(dst)
    rows = [r for r in old if int(r["step"]) < first] + [r for r in new if int(r["step"]) % every == 0]
    fields = old_fields + [f for f in new_fields if f not in old_fields]
    with dst.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    return len(rows), first


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def machine() -> tuple[str, str]:
    """(CPU model, precision the 'fast' path runs with on it)."""
    import platform

    from facetoon.cpuinfo import cpu_fields
    from facetoon.runtime import cpu_has_fast_bf16

    fields = cpu_fields()
    cpu = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    isa = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags]
    if isa:
        cpu += f" ({isa[0]})"
    return cpu, "bf16 (channels_last + autocast)" if cpu_has_fast_bf16() else "fp32 (no native bf16)"


def record_session(path: Path, first_step: int, meta: dict, precision: str,
                   config_file: str | None = None) -> list[dict]:
    """Add or update this run's row of ``sessions.jsonl`` (keyed by the step it started from);
    ``config_file``: the committed config the run trains with, where known."""
    import datetime

    cpu, fast = machine()
    used = fast if precision in ("fast", "auto") else "fp32"
    rows = [r for r in read_jsonl(path) if r["from_step"] != max(first_step - 1, 0)]
    rows.append({"from_step": max(first_step - 1, 0), "to_step": meta["step"],
                 "train_hours_total": meta["train_hours"], "date": datetime.date.today().isoformat(),
                 "cpu": cpu, "precision": used, "img_size": meta["config"]["img_size"]})
    if config_file:
        rows[-1]["config_file"] = config_file
    rows.sort(key=lambda r: r["from_step"])
    write_jsonl(path, rows)
    return rows


def sessions_table(rows: list[dict]) -> str:
    lines = ["| steps | image size | training hours (cumulative) | date | CPU | precision |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        size = f"{r['img_size']} px" if "img_size" in r else "-"
        lines.append(f"| {r['from_step']} -> {r['to_step']} | {size} | {r['train_hours_total']:.2f} | {r['date']} "
                     f"| {r['cpu']} | {r['precision']} |")
    return "\n".join(lines)


def shipped_weights(meta: dict) -> str:
    """What the shipped weights are, from their export metadata: the trained ones or their average."""
    if "snapshot_steps" in meta:  # scripts/average_snapshots.py
        steps = meta["snapshot_steps"]
        return (f"uniform average of {len(steps)} snapshots of the trained generator, steps "
                f"{', '.join(map(str, steps))} (`scripts/average_snapshots.py`; training itself is unchanged)")
    if "moving average" not in meta.get("weights", ""):
        return "the trained weights"
    ema = meta["config"].get("ema_decay")
    return (f"exponential moving average of the trained weights (`ema_decay = {ema}`, about the last "
            f"{round(1 / (1 - ema))} steps, over {meta.get('ema_updates', '?')} updates; training itself "
            "is unchanged)")


def averaged_over(meta: dict) -> str:
    """The training-steps cell's note for averaged snapshots."""
    steps = meta.get("snapshot_steps")
    return f"; the weights average snapshots of steps {steps[0]}-{steps[-1]}" if steps else ""


def samples_text(meta: dict) -> str:
    """What ``samples.jpg`` shows: the trainer's grid, or the averaging script's pairs."""
    if "snapshot_steps" in meta:
        return ("`samples.jpg`: held-out selfies and their translation by these (averaged) weights, two pairs a row\n"
                "(`scripts/average_snapshots.py`).")
    return ("`samples.jpg`: the sample grid of the shipped checkpoint on validation images; per row input | CAM heat-map |\n"
            "translation | heat-map | cycle reconstruction | heat-map | identity, each heat-map on the input of its pass\n"
            "(first rows selfie -> anime, last rows anime -> selfie).")


def averaging_text(meta: dict) -> str:
    """How to remake averaged weights (empty for trained weights)."""
    if "snapshot_steps" not in meta:
        return ""
    return ("\nThese weights are an average of the snapshots in `training/ugatit-selfie2anime/snapshots/`, one\n"
            "exported A->B generator per 1000-step interval where the repository kept one (the weights of a\n"
            "validation step, or a session's final state; `facetoon export ugatit RUN_DIR OUT --checkpoint\n"
            "RUN_DIR/checkpoints/step_N.pt --fp16`, its `a2b/`). Remake and score them (the scores of every\n"
            "snapshot alone and of the average go to `training/ugatit-selfie2anime/averages.jsonl`):\n\n"
            "```bash\npython scripts/average_snapshots.py training/ugatit-selfie2anime/snapshots/step_* \\\n"
            "    --data ../shared/data/selfie2anime --each --out weights/ugatit-selfie2anime\n"
            "python scripts/ship_weights.py ugatit RUN_DIR --keep-weights   # then the card\n```\n")


def committed_state_step(generator_dir: Path, default: int) -> int:
    """The step of the compact state's generator folder (its ``config.json`` meta), ``default`` if absent."""
    from facetoon.errors import WeightsError
    from facetoon.models.serialization import read_config

    try:
        return int(read_config(generator_dir).get("meta", {}).get("step", default))
    except WeightsError:
        return default


def continued(meta: dict) -> str:
    """A sentence for cards whose weights and committed run state are of different steps."""
    state_step = meta.get("state_step", meta["step"])
    if state_step == meta["step"]:
        return ""
    if "snapshot_steps" in meta and state_step > meta["step"]:
        return (f" These weights average snapshots up to step {meta['step']}; the run itself went on to step "
                f"{state_step} (the state in `training/`), from where it continues.")
    if state_step < meta["step"]:
        return (f" The compact state in `training/` is still that of step {state_step}, older than these "
                "weights; the session that trained them commits its state before it ends.")
    return (f" These weights are step {meta['step']}, the run's best validation so far; the run itself went on "
            f"to step {state_step} (the state in `training/`), from where it continues.")


def trained_kid(row: dict) -> float:
    """A validation row's KIDx100 of the trained weights (``kid_x100`` is the average's when one was kept)."""
    return row.get("kid_x100_live", row["kid_x100"])


def training_phases(sessions: list[dict]) -> list[tuple[int, str | None, int, int]]:
    """(image size, config file, first step, last step) of each run of consecutive sessions with
    one image size and config file, in step order; rows without ``img_size`` are skipped. Also read
    by scripts/make_kid_curve.py."""
    spans: list[list] = []
    for r in sorted(sessions, key=lambda r: r["from_step"]):
        size = r.get("img_size")
        if size is None:
            continue
        key = (size, session_config_file(r))
        if spans and tuple(spans[-1][:2]) == key:
            spans[-1][3] = r["to_step"]
        else:
            spans.append([*key, r["from_step"], r["to_step"]])
    return [(size, config, a, b) for size, config, a, b in spans]


def phases(sessions: list[dict]) -> str:
    """The face model's training phases (image size, steps, config file), from the session rows."""
    return "\n".join(f"- steps {a} -> {b}: {size} px, `{config or 'the run config below'}`"
                     for size, config, a, b in training_phases(sessions))


def ugatit_card(meta: dict, stats: list[dict], config_text: str, sessions: list[dict]) -> str:
    NAME = NAMES["ugatit"]
    cfg = meta["config"]
    # the phase the run continues in: the latest session's config file
    config_file = (session_config_file(sessions[-1]) if sessions else committed_config_file("ugatit", cfg)) or "CONFIG"
    averaged = "moving average" in meta.get("weights", "")
    shipped_kid = (lambda r: r["kid_x100"]) if averaged else trained_kid
    rows = "\n".join(f"| {s['step']} | {s.get('train_hours', 0):.2f} | {trained_kid(s):.2f} | "
                     + (f"{s['kid_x100']:.2f} |" if "kid_x100_live" in s else "- |") for s in stats) \
        or "| - | - | no validation pass yet | |"
    if stats:
        best = min(stats, key=shipped_kid)
        latest_kid = f"{shipped_kid(stats[-1]):.2f} at step {stats[-1]['step']}"
        best_kid = f"{shipped_kid(best):.2f} at step {best['step']}"
        here = [r for r in stats if r["step"] == meta["step"]]
        shipped = f"{shipped_kid(here[0]):.2f}" if here else "not validated at this step"
        if "snapshot_steps" in meta and "kid_x100" in meta:
            shipped = (f"{meta['kid_x100']:.2f} (the average of all snapshots, the repository's rule rather than "
                       "the best of several averages; the trainer's validation images and features, the "
                       "generator in fp32: `training/ugatit-selfie2anime/averages.jsonl`)")
    else:
        latest_kid = best_kid = shipped = "not measured yet (first validation pass at step " \
            f"{cfg['validate_every']})"
    reexport = ("# these weights average snapshots: remake them and the card as below\n" if "snapshot_steps" in meta
                else "python scripts/ship_weights.py ugatit RUN_DIR     # re-export this folder and its card\n")
    return f"""# ugatit-selfie2anime: the default face model of facetoon

U-GAT-IT generator (selfie -> anime face), A->B direction, trained **from scratch on this
project's 2-core CPU machines** with `facetoon train ugatit`. No pretrained U-GAT-IT weights were
used; no teacher model.

| | |
|---|---|
| architecture | `ugatit_generator`: light={cfg['light']}, ngf={cfg['ngf']}, n_res={cfg['n_res']}, trained at {cfg['img_size']} px |
| training steps | {meta['step']} (batch {cfg['batch_size']}){averaged_over(meta)} |
| wall-clock training time | {meta['train_hours']:.2f} h on 2 CPU cores (shared with development work) |
| precision | config `{cfg['precision']}`: channels_last + bf16 autocast on CPUs with native bf16, fp32 elsewhere (per session below) |
| shipped weights | {shipped_weights(meta)} |
| storage | fp16 safetensors, upcast to fp32 on load |
| validation KIDx100 of these weights | {shipped} |
| validation KIDx100 (latest step of the run) | {latest_kid} (as the trainer validated it, in its precision: `training/{NAME}/stats.jsonl`) |
| validation KIDx100 (best step of the run) | {best_kid} (likewise) |
| quality bar (issue 8; the README's "Default weights and model cards") | <= 40; goal <= 15 |

**Status: an early checkpoint of a run that continues across sessions.** Until the KID bar is met
these weights are a work in progress; see the history below.{continued(meta)}

## Training sessions

Each session resumed the run (from the full checkpoint when it survived, else warm-started from the
committed compact state `training/{NAME}/state`, which re-initialises the Adam moments):

{sessions_table(sessions)}

## Data

`../shared/data/selfie2anime` (the U-GAT-IT selfie2anime set: trainA selfies, trainB anime faces;
**research use only**). {cfg['holdout']} images of each domain are held out (seeded split,
`holdout_seed={cfg['holdout_seed']}`) for validation and never trained on.

**Bias.** Both sides of selfie2anime are female (female selfies, female anime characters, as the
U-GAT-IT paper describes its selection), and these weights map every face towards a young female
anime character: on `../shared/fixtures/four_faces.jpg` the men come out as anime girls, a dark skin
tone comes out pale and glasses are dropped.

## Configuration

The run trained in phases, each from a config file whose header explains every deviation from the
paper (all for CPU time) and why the phase exists:

{phases(sessions)}

Resolved config of the latest phase:

```toml
{config_text.strip()}
```

## Metric history

KIDx100 between {cfg['kid_images']} translated held-out selfies and {cfg['kid_images']} held-out anime faces, on pooled
MobileNetV2 features (`facetoon eval kid` definition, litert backend), computed by the trainer's validation pass,
for the generator as trained and, at the steps where the run kept one (`ema_decay`), for its weight average:

| step | training hours | KIDx100 | KIDx100, weight average |
|---|---|---|---|
{rows}

For scale, on the same 200 held-out anime faces: the 200 held-out selfies untouched score 165.5 at
256 px, 200 training anime faces 2.05 (`python benchmarks/bench_kid_resolution.py`,
`benchmarks/results/2026-11-22-kid-resolution-floor.md`).

![validation KID curve](../../docs/figures/ugatit_kid_curve.png)

(`python scripts/make_kid_curve.py`, from `training/{NAME}/stats.jsonl`; re-run after shipping.)

## Samples

{samples_text(meta)}

## Reproduce / continue

```bash
facetoon train ugatit --data ../shared/data/selfie2anime --out RUN_DIR \\
    --config {config_file} --resume
# without the full checkpoint (a new machine): warm start from the committed compact state
facetoon train ugatit --data ../shared/data/selfie2anime --out RUN_DIR \\
    --config {config_file} --set init_from=training/{NAME}/state
{reexport}```
{averaging_text(meta)}
## Licences

The weights are facetoon's (MIT). They were learnt from selfie2anime, which is distributed for
research; check its terms before commercial use.
"""


def animegan_card(meta: dict, stats: list[dict], config_text: str, sessions: list[dict]) -> str:
    cfg = meta["config"]
    teacher = (f"yes: the official CartoonGAN Hayao generator (MIT licence) as a distillation teacher, "
               f"`teacher_weight = {cfg['teacher_weight']}` x L1(G(p), T(p)) added to the AnimeGAN losses"
               if cfg.get("teacher") and cfg.get("teacher_weight", 0) > 0 else "none")
    if cfg.get("teacher_init"):
        teacher += " and to the initialisation's content loss (`teacher_init`)"
    init = "content + distillation" if cfg.get("teacher_init") else "content-only"
    steps_note = f"the first {cfg['init_steps']} steps are the {init} initialisation"
    if meta["step"] <= cfg["init_steps"]:
        steps_note = (f"all within the {cfg['init_steps']}-step {init} initialisation: "
                      "**not yet trained adversarially**")
    config_path = committed_config_file("animegan", tomllib.loads(config_text).get("train", {}))
    config_file = f"`{config_path}`" if config_path else "(no committed config file has all of the run's settings)"
    config_arg = config_path or "CONFIG"
    training = REPO / "training" / NAMES["animegan"]
    scores = read_jsonl(training / "scene_scores.jsonl")
    scores_text = "" if not scores else f"""
## Validation on portraits

`python scripts/score_scene_model.py GENERATOR ... --record training/animegan-anime/scene_scores.jsonl`:
each generator stylizes the face model's 200 held-out selfies (256 px; kept out of this model's
data too) and the score is KIDx100 against the face model's 200 held-out anime faces (issue 8's
metric, the face model's validation). It says how far the scene model alone moves a portrait toward
the anime frames of the face model; the selfies unchanged score about 165, the CartoonGAN Hayao
teacher about 63.

{scene_scores_table(scores)}

Each row names the generator as it was scored: `runs/` folders stay on the machine that trained,
and `weights/animegan-anime` holds the weights shipped at the time (`git log -- weights/animegan-anime`
finds earlier ones); `python scripts/score_scene_model.py weights/animegan-anime` scores the weights
shipped now.
"""
    scored_here = [r for r in scores if r.get("step") == meta["step"] and "cartoongan" not in r["generator"]]
    shipped_score = (f"{scored_here[-1]['kid_x100']:.1f} (`scripts/score_scene_model.py`, table below)"
                     if scored_here else "not scored yet (`scripts/score_scene_model.py`)")
    first_run = REPO / "training" / "animegan-anime-run1"
    first_run_text = ""
    if first_run.is_dir():
        run1 = read_jsonl(first_run / "sessions.jsonl")[-1]  # its last session: steps and hours in all
        run1_init = tomllib.loads((first_run / "config.toml").read_text())["train"]["init_steps"]
        first_run_text = f"""
**An earlier run.** `training/animegan-anime-run1/` holds the first run of this model
(`configs/animegan_anime_cpu.toml`: content-only initialisation of {run1_init} steps, then {run1['to_step'] - run1_init}
adversarial steps, {run1['train_hours_total']:.2f} h): its generator barely moved from the initialisation{" (its scores below)" if scores else ""};
its step-1381 weights were the default scene model before this run's.
"""
    return f"""# animegan-anime: the default scene (background) model of facetoon

AnimeGAN{cfg['version']} generator (photo -> anime scene), trained **from scratch on this project's
2-core CPU machines** with `facetoon train animegan`.

| | |
|---|---|
| architecture | `animegan` version {cfg['version']} (2,143,552 parameters for v2), trained at {cfg['img_size']} px, runs at any size |
| training steps | {meta['step']} (batch {cfg['batch_size']}; {steps_note}) |
| wall-clock training time | {meta['train_hours']:.2f} h on 2 CPU cores (shared with development work) |
| losses | AnimeGAN{cfg['version']}: adversarial (LSGAN, grayscale and edge-smoothed anime as negatives), content, grayscale style, colour, TV; preset `{cfg['loss_preset']}` |
| perceptual network | `{cfg['perceptual']}` |
| teacher | {teacher} |
| shipped weights | {shipped_weights(meta)} |
| storage | fp16 safetensors, upcast to fp32 on load |
| KIDx100 of these weights on the face model's held-out selfies | {shipped_score} |

**Status: an early checkpoint of a run that continues across sessions**; it is not yet a good
anime scene model.{continued(meta)}{" Being from the initialisation, it mostly imitates the teacher's colours and is still blurred; the adversarial phase (its edge-smoothed negatives push for crisp edges) comes next." if meta["step"] <= cfg["init_steps"] else ""}

## Training sessions

{sessions_table(sessions)}
{first_run_text}{scores_text}
## Data

Built by `python scripts/prepare_animegan_data.py` from `../shared`: photos = BSDS500 train+val
(research use; the first 8 of val are kept out for the sample grids) and the selfie2anime trainA
selfies (research use) minus the face model's held-out validation selfies; style = the selfie2anime
trainB anime frames (their background art; research use) minus the face model's held-out ones; their edge-smoothed copies from `facetoon prepare-smooth`.

**Why these style images.** `../shared` offers two anime style domains for scenes: the trainB frames
(the face model's own target domain, so face and scene of one portrait share a style) and the
official CartoonGAN Hayao model (Miyazaki scenery; a style set would be its outputs). We train on
trainB so that the style matches the faces, and use Hayao as a distillation teacher for what
trainB lacks (most frames are close-ups, with little scenery). Side by side, three trainB frames
and, for validation photos, the photo | CartoonGAN Hayao | this model:
[`docs/figures/scene_style_choice.jpg`](../../docs/figures/scene_style_choice.jpg)
(`python scripts/make_style_figure.py`, re-run after shipping).

## Configuration

{config_file} (its header lists every deviation from the official settings,
all for CPU time). Resolved config of the run:

```toml
{config_text.strip()}
```

## Samples

`samples.jpg`: validation photos; per row photo | this model | the teacher (if any).

## Reproduce / continue

```bash
python scripts/prepare_animegan_data.py
facetoon train animegan --data ../data/animegan --out RUN_DIR --config {config_arg} --resume
# without the full checkpoint (a new machine): warm start from the committed compact state
facetoon train animegan --data ../data/animegan --out RUN_DIR --config {config_arg} \\
    --set init_from=training/animegan-anime/state
python scripts/ship_weights.py animegan RUN_DIR
```

## Licences

The weights are facetoon's (MIT). Training data: selfie2anime and BSDS500 (research use); teacher:
CartoonGAN Hayao weights (MIT).
"""


CARDS = {"ugatit": ugatit_card, "animegan": animegan_card}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=sorted(NAMES))
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data", help="data folder, if it moved since training")
    ap.add_argument("--checkpoint", type=Path,
                    help="the run's state to ship into training/ (default: the latest checkpoint of RUN_DIR)")
    ap.add_argument("--weights-checkpoint", type=Path,
                    help="ship the generator of this checkpoint into weights/ instead (e.g. RUN_DIR/checkpoints/"
                         "best.pt, the best validation so far), while training/ gets --checkpoint's state")
    ap.add_argument("--keep-weights", action="store_true",
                    help="leave weights/ as it is (e.g. better than every step of this run): ship the state and "
                         "histories into training/ and rewrite the model card")
    ap.add_argument("--no-state", action="store_true",
                    help="leave training/<name>/state as it is (ship the weights and the histories only)")
    args = ap.parse_args()
    if args.keep_weights and args.no_state:
        ap.error("--keep-weights with --no-state would ship nothing but the histories")
    if args.keep_weights and args.weights_checkpoint:
        ap.error("--keep-weights and --weights-checkpoint exclude each other")
    name = NAMES[args.model]
    weights = REPO / "weights" / name
    training = REPO / "training" / name
    weights.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out, samples = Path(tmp) / "export", Path(tmp) / "samples.jpg"
        if args.no_state and args.weights_checkpoint:  # the state checkpoint serves only its step and hours
            from facetoon.train.checkpoint import latest_checkpoint

            state_ckpt = args.checkpoint or latest_checkpoint(args.run_dir)
            if state_ckpt is None:
                ap.error(f"no checkpoint in {args.run_dir / 'checkpoints'}")
            state_meta = checkpoint_meta(state_ckpt)
        else:
            export(args.model, args.run_dir, out, args.data, samples, args.checkpoint)
            state_meta = json.loads((out / GENERATOR[args.model] / "config.json").read_text())["meta"]
        state = training / "state"
        if not args.no_state:
            # the B->A average serves only sample grids; warm starts copy it from b2a/ when it is missing.
            # ema_a2b/ (like ema_generator/) holds the same bytes as the shipped weights: git stores them once.
            replace_folder(out, state, skip=("ema_b2a",))
        if args.weights_checkpoint:
            out, samples = Path(tmp) / "weights-export", Path(tmp) / "weights-samples.jpg"
            export(args.model, args.run_dir, out, args.data, samples, args.weights_checkpoint)
        source = out / f"ema_{GENERATOR[args.model]}"  # the weight average, if the run keeps one
        if not source.is_dir():
            source = out / GENERATOR[args.model]
        if not args.keep_weights:
            for p in ("config.json", "model.safetensors"):
                shutil.copy2(source / p, weights / p)
            shutil.copy2(samples, weights / "samples.jpg")
    meta = json.loads((weights / "config.json").read_text())["meta"]
    n, first_step = merge_losses(args.run_dir / "losses.csv", training / "losses_every50.csv", state_meta["step"])
    run_stats = [s for s in read_jsonl(args.run_dir / "stats.jsonl") if s["step"] <= state_meta["step"]]
    stats = [s for s in read_jsonl(training / "stats.jsonl") if s["step"] < first_step] + run_stats
    if stats:
        write_jsonl(training / "stats.jsonl", stats)
    config_text = (args.run_dir / "config.toml").read_text()
    (training / "config.toml").write_text(config_text)
    run_config = tomllib.loads(config_text).get("train", {})
    precision = run_config.get("precision", "auto")  # the run's, not the export's
    sessions = record_session(training / "sessions.jsonl", first_step, state_meta, precision,
                              committed_config_file(args.model, run_config))
    # the step the committed state continues from (with --no-state: the step of the state left in place)
    meta["state_step"] = committed_state_step(state / GENERATOR[args.model], meta["step"]) if args.no_state \
        else state_meta["step"]
    (weights / "MODEL_CARD.md").write_text(CARDS[args.model](meta, stats, config_text, sessions))
    what = "kept" if args.keep_weights else "shipped"
    state_note = "state left as it was" if args.no_state else f"the state of step {state_meta['step']}"
    print(f"{what} {name} step {meta['step']} ({meta['train_hours']:.2f} h) in {weights}, {state_note} in "
          f"{training}; {len(stats)} validation rows, {n} loss rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
