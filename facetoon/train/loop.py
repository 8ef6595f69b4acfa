"""The training services shared by every facetoon trainer (U-GAT-IT, AnimeGAN).

A concrete trainer subclasses :class:`Trainer` and writes only what is particular to its model:
``build_networks`` (networks, optimisers), ``build_data`` (data and what only training needs, e.g. loss
networks), ``train_step``, ``state_dict``/``load_state_dict``,
``sample_grid``, ``validate`` and ``export``. :meth:`Trainer.fit` supplies the rest, once:

* device and precision (CPU fast path: channels_last + bf16 autocast; CUDA: AMP) via
  :mod:`facetoon.runtime`; ``torchrun`` process groups via :mod:`facetoon.train.distributed`;
* deterministic, resumable data order (:mod:`facetoon.train.data`);
* a tqdm progress bar with the losses and the time per step; CSV + TensorBoard logs;
* sample grids every ``sample_every`` steps;
* checkpoints every ``checkpoint_every`` steps **and** every ``checkpoint_minutes`` minutes,
  atomic, the last ``keep_checkpoints`` kept; ``resume`` continues exactly; resuming at an earlier
  step than the run folder's newest checkpoint moves the later ones aside (a WARNING names them:
  ``checkpoints/abandoned_after_XXXXXXXX/``), as the loss log drops their rows;
* on ``resume``, the config is compared with the one saved in the checkpoint: a changed key that
  is not in :data:`RUNTIME_ONLY_KEYS` (e.g. ``seed``, ``batch_size``, a learning rate) is logged
  as a WARNING (``key old -> new``; the run then no longer reproduces an uninterrupted one) and
  appended to ``RUN_DIR/config_changes.jsonl``, one JSON object per key
  (``{"step", "key", "old", "new"}``, the step the run resumed at), before ``RUN_DIR/config.toml``
  is rewritten with the new config; so is a changed number of processes (``world_size``, saved in
  the checkpoint: the data order depends on it), as the row ``{"step", "key": "world_size", ...}``,
  and a changed number of training files per domain (``data_files``, likewise);
* validation every ``validate_every`` steps (before that step's checkpoint); the state with the
  lowest ``best_metric`` so far is kept apart as ``checkpoints/best.pt`` (never pruned), with
  ``checkpoints/best.json`` naming its step and value;
* optionally (``ema_decay > 0``) an exponential moving average of the generator weights
  (:mod:`facetoon.train.ema`), checkpointed with the rest; validation, samples and exports then
  use the average;
* SIGINT/SIGTERM: finish the current step, save a checkpoint, exit cleanly;
* a step whose losses are not finite (NaN/inf: the weights diverged) stops the run with a
  :class:`~facetoon.errors.TrainingError` before that step is saved, so the checkpoints kept are
  those of finite weights.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .._fileutil import atomic_open, atomic_write_bytes
from ..errors import ConfigError, TrainingError, WeightsError
from ..models.serialization import read_config
from ..runtime import Runtime, resolve_runtime
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_aside_checkpoints
from .config import save_config
from .data import StepSampler, make_loader
from .distributed import DistInfo, all_ranks, any_rank, cleanup_distributed, init_distributed
from .ema import WeightAverage
from .logger import MetricLogger
from .warm_start import warm_start

__all__ = ["BaseTrainConfig", "Trainer", "RUNTIME_ONLY_KEYS", "CONFIG_CHANGES", "check_data_options"]

log = logging.getLogger(__name__)

#: Config keys a resume may change without a warning: they say where and how the run executes or
#: what it writes beside training (device and arithmetic, data-loading processes, logs, sample
#: grids, checkpoints, validation schedule and metric (``kid_images``, ``kid_backend``: the KID's
#: sample and feature extractor, which training never sees; the held-out split is ``holdout``), the
#: warm-start source a resume ignores), not the data order, the schedule, the model or the losses.
#: ``precision`` is one of them although it changes the rounding, because a run moves between
#: machines with and without native bf16.
RUNTIME_ONLY_KEYS = frozenset({
    "device", "precision", "num_workers", "log_every", "sample_every", "n_samples", "checkpoint_every",
    "checkpoint_minutes", "keep_checkpoints", "validate_every", "kid_images", "kid_backend", "tensorboard",
    "init_from",
})
#: the run folder's record of config changes made on resume (see the module docstring)
CONFIG_CHANGES = "config_changes.jsonl"


@dataclasses.dataclass
class BaseTrainConfig:
    """Options every trainer has. Subclasses add the model's hyper-parameters."""

    seed: int = 0  # seeds weights, data order and augmentation
    iterations: int = 1_000_000  # total optimisation steps
    batch_size: int = 1  # per process
    device: str = "auto"  # "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...
    # "fp32" (default: the papers' precision, the reference) | "fast" (CPU: channels_last + bf16 where
    # native; CUDA: fp16 AMP) | "auto" (= "fast" where supported); the CPU configs choose "fast"
    precision: str = "fp32"
    num_workers: int = 0  # data loader worker processes
    log_every: int = 1  # CSV/TensorBoard loss rows
    sample_every: int = 1000  # sample grids
    checkpoint_every: int = 5000  # checkpoint every N steps ...
    checkpoint_minutes: float = 10.0  # ... and every M minutes of wall-clock time
    keep_checkpoints: int = 3
    validate_every: int = 5000  # validation metric (0 = never)
    tensorboard: bool = True
    # warm start from exported weights (see facetoon.train.warm_start); ignored when resuming
    init_from: str = ""
    # after an init_from warm start the optimiser moments start afresh, and Adam's first updates then
    # move every weight by about the full lr whatever its gradient: ramp every lr linearly from
    # lr / N to lr over the first N steps after the warm start (0 = off, the papers train from scratch)
    warm_start_lr_ramp: int = 0
    # EMA of the generator weights for validation, samples and export (0 = off, as in the papers;
    # see facetoon.train.ema). 0.999 averages over the last ~1000 steps.
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "sample_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ema_decay must be in [0, 1)")
        if self.keep_checkpoints < 1:
            raise ConfigError("keep_checkpoints must be >= 1")
        for name in ("warm_start_lr_ramp", "seed", "num_workers", "validate_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if not self.checkpoint_minutes > 0:
            raise ConfigError("checkpoint_minutes must be > 0")


def check_data_options(*, holdout: int, kid_images: int, kid_backend: str, n_samples: int,
                       aug_margin: int) -> None:
    """Options of a trainer's data, sample grids and KID validation, checked when its config is
    made (a bad value would otherwise surface at the first batch, sample grid or validation, up to
    an hour into a CPU run, and a failing validation stops the run before it saves that step)."""
    from ..metrics.features import BACKENDS

    if holdout < 0 or aug_margin < 0:
        raise ConfigError("holdout and aug_margin must be >= 0")
    if kid_images < 0 or kid_images == 1:
        raise ConfigError(f"kid_images must be 0 (no KID) or >= 2 (KID compares sets), got {kid_images}")
    if n_samples < 1:
        raise ConfigError(f"n_samples (images per sample grid) must be >= 1, got {n_samples}")
    if kid_backend not in BACKENDS:
        raise ConfigError(f"kid_backend must be one of {list(BACKENDS)}, got {kid_backend!r}")


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps (a second signal aborts)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker)
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("received %s: saving a checkpoint after this step", signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer(abc.ABC):
    """Base class of facetoon's trainers; see the module docstring."""

    config: BaseTrainConfig
    dataset: Dataset[Any]  # created by build()
    #: the :meth:`validate` key whose lowest value marks the best state (``checkpoints/best.pt``)
    best_metric: str = "kid_x100"

    def __init__(self, config: BaseTrainConfig, data_dir: str | os.PathLike[str] | None,
                 run_dir: str | os.PathLike[str], resume: bool | str | os.PathLike[str] = False) -> None:
        """``data_dir=None``: networks only, e.g. to export a checkpoint on a machine without the
        training data (no :meth:`fit`, :meth:`sample_grid` or :meth:`validate` then)."""
        self.config = config
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.run_dir = Path(run_dir)
        runtime = resolve_runtime(config.device, config.precision)
        self.dist: DistInfo = init_distributed(runtime.device.type)
        if runtime.device.type == "cuda" and self.dist.enabled:
            runtime = dataclasses.replace(runtime, device=torch.device("cuda", self.dist.local_rank))
        self.runtime: Runtime = runtime
        self.step = 0
        self.train_seconds = 0.0  # wall-clock seconds spent in training steps, summed over sessions
        self.best: dict[str, Any] | None = None  # {"step", "metric", "value", ...} of the best validation
        self.warm_started_at: int | None = None  # the step an init_from warm start continued at
        # the config saved with the resumed checkpoint (what its weights trained with), until a step trains
        self._checkpoint_config: dict[str, Any] | None = None
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        self.build_networks()
        if self.data_dir is not None:
            self.build_data()
            if config.validate_every:
                # now, not at the first validation an hour in: a checkout updated under a running
                # trainer must not mix old and new modules (an ImportError mid-run)
                import facetoon.metrics.features  # noqa: F401
                import facetoon.metrics.kid  # noqa: F401
        self.ema: WeightAverage | None = None
        if config.ema_decay > 0:
            self.ema = WeightAverage(self.ema_source(), config.ema_decay)
        checkpoint = self._find_resume(resume)
        changes: list[tuple[str, Any, Any]] = []
        if checkpoint is not None:
            state = load_checkpoint(checkpoint, map_location=self.runtime.device)
            self.step = int(state["step"])  # set first: load_state_dict may depend on it
            try:
                self.load_state_dict(state["trainer"])
                if self.ema is not None and state.get("ema"):
                    self.ema.load_state_dict(state["ema"])
                elif self.ema is not None:
                    log.info("the checkpoint has no weight average: it starts from the current weights")
                elif state.get("ema"):
                    log.warning("the checkpoint holds a weight average, but ema_decay = 0: it is dropped")
            except (KeyError, TypeError, RuntimeError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise WeightsError(f"checkpoint does not match this trainer/config ({first})",
                                   path=checkpoint) from None
            self.train_seconds = float(state.get("train_seconds", 0.0))
            self.best = state.get("best")
            self.warm_started_at = state.get("warm_started_at")
            log.info("resumed from %s at step %d", checkpoint, self.step)
            if isinstance(state.get("config"), dict):
                self._checkpoint_config = self._resolve_saved_config(state["config"])
                changes = self._config_changes(self._checkpoint_config)
            changes += self._world_size_change(state.get("world_size"))
            changes += self._data_change(state.get("data"))
        elif config.init_from:
            self._warm_start(Path(config.init_from))
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if changes:
                self._record_config_changes(changes)
            save_config(config, self.run_dir / "config.toml")
            if self.data_dir is not None:
                atomic_write_bytes(self.run_dir / "data_dir.txt", f"{self.data_dir.resolve()}\n".encode())
        log.info("device %s, precision %s, %d process(es)", self.runtime.device, self.runtime.precision,
                 self.dist.world_size)

    def _resolve_saved_config(self, saved: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint's saved config as this trainer's config class resolves it today: placeholders
        of older versions (e.g. AnimeGAN's -1 loss weights) become their values, options added since
        take their defaults, removed ones are dropped. The saved dict itself if the class refuses it."""
        cls = type(self.config)
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return dataclasses.asdict(cls(**{k: v for k, v in saved.items() if k in names}))
        except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
            log.debug("the checkpoint's config does not load as %s (%s): compared as saved", cls.__name__, exc)
            return dict(saved)

    def _config_changes(self, saved: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """``(key, old, new)`` of each key outside :data:`RUNTIME_ONLY_KEYS` whose value in this
        config differs from ``saved`` (the resumed checkpoint's config); logged as a warning."""
        current = dataclasses.asdict(self.config)
        changes = [(k, saved[k], v) for k, v in current.items()
                   if k not in RUNTIME_ONLY_KEYS and k in saved and saved[k] != v]
        if changes and self.dist.is_main:
            log.warning("--resume: the config differs from the checkpoint's (step %d): %s; the run no "
                        "longer reproduces an uninterrupted one (recorded in %s)", self.step,
                        ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes),
                        self.run_dir / CONFIG_CHANGES)
        return changes

    def _world_size_change(self, saved: Any) -> list[tuple[str, Any, Any]]:
        """``[("world_size", old, new)]`` if the resumed checkpoint trained with another number of
        processes than this run (logged as a warning); ``[]`` if the same or not saved (older checkpoints)."""
        if saved is None or int(saved) == self.dist.world_size:
            return []
        if self.dist.is_main:
            log.warning("--resume: the checkpoint (step %d) trained with %d process(es), this run has %d: each "
                        "step now draws other samples, so the run no longer reproduces an uninterrupted one "
                        "(recorded in %s)", self.step, int(saved), self.dist.world_size,
                        self.run_dir / CONFIG_CHANGES)
        return [("world_size", int(saved), self.dist.world_size)]

    def data_signature(self) -> dict[str, Any] | None:
        """What the data order depends on, saved in each checkpoint: the number of training files
        of each domain (and, for the record, the data folder); ``None`` without data."""
        samplers = getattr(getattr(self, "dataset", None), "samplers", None)
        if self.data_dir is None or not samplers:
            return None
        return {"dir": str(self.data_dir.resolve()), "files": [int(s.n) for s in samplers]}

    def _data_change(self, saved: Any) -> list[tuple[str, Any, Any]]:
        """``[("data_files", old, new)]`` if the resumed checkpoint trained on another number of files
        per domain (logged as a warning: the data order changes); ``[]`` otherwise, or for checkpoints
        without the record. Another folder with the same counts is only logged."""
        current = self.data_signature()
        if not isinstance(saved, dict) or current is None or "files" not in saved:
            return []
        if list(saved["files"]) == current["files"]:
            if saved.get("dir") != current["dir"] and self.dist.is_main:
                log.info("--resume: the data folder is now %s (was %s), with as many files per domain",
                         current["dir"], saved.get("dir"))
            return []
        if self.dist.is_main:
            log.warning("--resume: the checkpoint (step %d) trained on %s file(s) per domain in %s, this run has "
                        "%s in %s: each step now draws other samples, so the run no longer reproduces an "
                        "uninterrupted one (recorded in %s)", self.step, saved["files"], saved.get("dir"),
                        current["files"], current["dir"], self.run_dir / CONFIG_CHANGES)
        return [("data_files", list(saved["files"]), current["files"])]

    def _record_config_changes(self, changes: list[tuple[str, Any, Any]]) -> None:
        """Append ``changes`` to ``RUN_DIR/config_changes.jsonl`` (before config.toml is rewritten)."""
        rows = "".join(json.dumps({"step": self.step, "key": k, "old": old, "new": new}) + "\n"
                       for k, old, new in changes)
        with open(self.run_dir / CONFIG_CHANGES, "a", encoding="utf-8") as f:
            f.write(rows)

    def trained_config(self) -> dict[str, Any]:
        """The configuration the current weights were trained with, for export metadata: that saved
        with the resumed checkpoint (its device and precision, not those of the exporting process)
        until this trainer trains a step, then this trainer's own."""
        if self._checkpoint_config is not None:
            return dict(self._checkpoint_config)
        return dataclasses.asdict(self.config)

    def _warm_start(self, folder: Path) -> None:
        targets, required = self.warm_start_targets()
        averages = self._average_targets(targets)
        self.step, self.train_seconds, loaded = warm_start(folder, targets | averages, required)
        if self.config.warm_start_lr_ramp:  # recorded only with a ramp: a later resume keeps its moments
            self.warm_started_at = self.step
            log.info("init_from: the lr ramps up over steps %d-%d", self.step + 1,
                     self.step + self.config.warm_start_lr_ramp)
        if self.ema is not None and loaded & set(averages):
            for name, module in averages.items():
                if name not in loaded:  # e.g. only one generator's average was shipped
                    module.load_state_dict(targets[name.removeprefix("ema_")].state_dict())
            meta = read_config(folder / min(loaded & set(averages))).get("meta", {})
            self.ema.mark_started(int(meta.get("ema_updates", self.step)))
        elif self.ema is None and any((folder / f"ema_{name}").is_dir() for name in targets):
            log.warning("init_from: %s holds weight averages (ema_*), but ema_decay = 0: they are not used", folder)

    def _average_targets(self, targets: dict[str, torch.nn.Module]) -> dict[str, torch.nn.Module]:
        """``ema_<name>``: the weight average's counterpart of each warm-start target it covers."""
        if self.ema is None:
            return {}
        paths = {id(m): name for name, m in self.ema_source().named_modules()}
        return {f"ema_{name}": self.ema.module.get_submodule(paths[id(m)])
                for name, m in targets.items() if id(m) in paths}

    def lr_ramp(self) -> float:
        """Factor in (0, 1] on every learning rate of the next step: ``(k + 1) / N`` for the k-th step
        (k = 0, 1, ...) after an ``init_from`` warm start when ``warm_start_lr_ramp = N > 0``, else 1."""
        n = self.config.warm_start_lr_ramp
        if n <= 0 or self.warm_started_at is None:
            return 1.0
        return min(1.0, (self.step - self.warm_started_at + 1) / n)

    def averaged(self, module: torch.nn.Module) -> torch.nn.Module:
        """The weight average of ``module`` (a sub-network of :meth:`ema_source`) for evaluation
        and export; ``module`` itself when ``ema_decay`` is 0 or no step has been averaged yet."""
        if self.ema is None or not self.ema.started:
            return module
        for name, sub in self.ema_source().named_modules():
            if sub is module:
                return self.ema.module.get_submodule(name)
        raise ValueError(f"{type(module).__name__} is not part of the averaged network")

    def weights_meta(self, module: torch.nn.Module) -> dict[str, Any]:
        """Export metadata saying what a generator's weights are when the run keeps a weight average:
        ``{"weights": "exponential moving average ...", "ema_updates": n}`` for the average,
        ``{"weights": "trained ..."}`` for the trained generator; ``{}`` otherwise."""
        if self.ema is None or not self.ema.started:
            return {}
        if any(module is m for m in self.ema.module.modules()):
            return {"weights": f"exponential moving average of the trained weights, decay {self.ema.decay}",
                    "ema_updates": self.ema.updates}
        if any(module is m for m in self.ema_source().modules()):
            return {"weights": "trained weights (not averaged)"}
        return {}

    def _find_resume(self, resume: bool | str | os.PathLike[str]) -> Path | None:
        if resume is False or resume is None:
            if latest_checkpoint(self.run_dir) is not None:
                raise ConfigError("the run folder already has checkpoints: pass --resume to continue it "
                                  "or choose another --out", path=self.run_dir)
            return None
        if resume is True:
            found = latest_checkpoint(self.run_dir)
            if found is None:
                log.warning("--resume: no checkpoint in %s yet; starting from step 0", self.run_dir)
            return found
        return Path(resume)

    def require_data_dir(self) -> Path:
        """The data folder; :class:`ConfigError` for a trainer created with ``data_dir=None``."""
        if self.data_dir is None:
            raise ConfigError("this trainer was created without data (data_dir=None): it can export, not train")
        return self.data_dir

    # ---- what a concrete trainer provides -------------------------------------------------
    @abc.abstractmethod
    def build_networks(self) -> None:
        """Create the networks, their optimisers and gradient scalers (everything a checkpoint restores)."""

    @abc.abstractmethod
    def build_data(self) -> None:
        """Create ``self.dataset`` (a map-style dataset of samples), the validation files and what only
        training needs (e.g. loss networks, a teacher); runs after :meth:`build_networks`."""

    def warm_start_targets(self) -> tuple[dict[str, torch.nn.Module], tuple[str, ...]]:
        """Networks ``init_from`` loads, by folder name, and the names that must be present."""
        raise ConfigError(f"{type(self).__name__} does not support init_from")

    def ema_source(self) -> torch.nn.Module:
        """The network whose weights ``ema_decay`` averages (the generator(s); not DDP-wrapped)."""
        raise ConfigError(f"{type(self).__name__} does not support ema_decay")

    @abc.abstractmethod
    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimisation step on ``batch``; returns the losses as floats."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (networks, optimisers, schedulers)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def sample_grid(self) -> np.ndarray:
        """A grid of fixed validation samples, HxWx3 uint8 RGB."""

    def validate(self) -> dict[str, float]:
        """Validation metrics on held-out data (main rank only); none by default."""
        return {}

    @abc.abstractmethod
    def export(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write the inference models (safetensors + config.json)."""

    # ---- the services ------------------------------------------------------------------------
    def _full_state(self) -> dict[str, Any]:
        return {"step": self.step, "train_seconds": self.train_seconds, "trainer": self.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                # the values trained with, and apart the options left to placeholders (e.g. AnimeGAN's
                # preset-derived weights), which a --resume CHECKPOINT with another preset re-derives
                "config": dataclasses.asdict(self.config),
                "config_placeholders": getattr(self.config, "placeholders", dict)(), "best": self.best,
                "warm_started_at": self.warm_started_at, "world_size": self.dist.world_size,
                "data": self.data_signature()}

    def save(self) -> Path | None:
        if not self.dist.is_main:
            return None
        return save_checkpoint(self._full_state(), self.run_dir, self.step, keep=self.config.keep_checkpoints)

    def track_best(self, stats: dict[str, float]) -> bool:
        """If ``stats[best_metric]`` beats the best so far, write ``checkpoints/best.pt`` (the full
        state, atomically) and ``checkpoints/best.json``; returns whether it did. A best measured on
        other weights (the average vs the trained ones, after ``ema_decay`` changed) is replaced."""
        value = stats.get(self.best_metric)
        if not self.dist.is_main or value is None or not math.isfinite(value):
            return False
        # what the metric measured: the weight average or the trained weights (``ema_decay``), and
        # with which sample and features (runtime-only keys: a resume may change them)
        weights = "average" if self.ema is not None and self.ema.started else "trained"
        measure = {k: getattr(self.config, k) for k in ("kid_images", "kid_backend") if hasattr(self.config, k)}
        if self.best is not None and self.best.get("weights", "trained") != weights:
            log.info("the best %s so far (step %d) measured the %s weights, this one the %s: comparing afresh",
                     self.best_metric, self.best["step"], self.best.get("weights", "trained"), weights)
        elif self.best is not None and self.best.get("measure", measure) != measure:
            log.info("the best %s so far (step %d) was measured with %s, this one with %s: comparing afresh",
                     self.best_metric, self.best["step"], self.best["measure"], measure)
        elif self.best is not None and value >= float(self.best["value"]):
            return False
        self.best = {"step": self.step, "metric": self.best_metric, "value": float(value), "weights": weights,
                     "measure": measure}
        folder = self.run_dir / "checkpoints"
        with atomic_open(folder / "best.pt", suffix=".pt") as f:
            torch.save(self._full_state(), f)
        with atomic_open(folder / "best.json", suffix=".json") as f:
            f.write((json.dumps(self.best) + "\n").encode())
        log.info("new best %s = %.4g at step %d: %s", self.best_metric, value, self.step, folder / "best.pt")
        return True

    def write_samples(self, grid: np.ndarray | None = None) -> Path:
        """Write ``grid`` (default: a fresh :meth:`sample_grid`) to ``samples/step_N.jpg`` and ``latest.jpg``."""
        from PIL import Image

        if grid is None:
            grid = self.sample_grid()
        folder = self.run_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{self.step:08d}.jpg"
        for target in (path, folder / "latest.jpg"):
            with atomic_open(target, suffix=".jpg") as f:
                Image.fromarray(grid).save(f, format="JPEG", quality=90)
        return path

    def _sync_flags(self, *flags: bool) -> list[bool]:
        """Each flag, true on every rank if true on any (reduced on the runtime device)."""
        return any_rank(flags, self.dist, self.runtime.device)

    def fit(self) -> int:
        """Train until ``config.iterations`` or a stop signal; returns the step reached."""
        cfg = self.config
        if self.step >= cfg.iterations:
            log.info("already at step %d of %d: nothing to do", self.step, cfg.iterations)
            return self.step
        self.require_data_dir()
        main = self.dist.is_main
        if main:  # as the logger drops the loss rows of later steps (see set_aside_checkpoints)
            set_aside_checkpoints(self.run_dir, self.step)
        logger = MetricLogger(self.run_dir, self.step, tensorboard=cfg.tensorboard) if main else None
        sampler = StepSampler(self.step, cfg.batch_size, self.dist.rank, self.dist.world_size, cfg.iterations)
        loader = make_loader(self.dataset, sampler, cfg.batch_size, cfg.num_workers)
        bar = None
        if main:
            from tqdm.auto import tqdm

            tty = sys.stderr.isatty()
            bar = tqdm(total=cfg.iterations, initial=self.step, unit="step", dynamic_ncols=True,
                       mininterval=0.5 if tty else 60.0, smoothing=0.05, desc=type(self).__name__)
        last_save = time.monotonic()
        bad: dict[Path, str] | None = None  # every rank's bad files, gathered where all ranks are
        try:
            with _StopRequest() as stop:
                for batch in loader:
                    t0 = time.perf_counter()
                    losses = self.train_step(batch)
                    self._checkpoint_config = None  # the weights now train with this config
                    if self.ema is not None:
                        self.ema.update(self.ema_source())
                    dt = time.perf_counter() - t0
                    self.step += 1
                    self.train_seconds += dt
                    # diverged weights (NaN/inf losses) must not reach a checkpoint: the run stops
                    # here, before this step is saved, and the earlier checkpoints stay as they are
                    finite = all(math.isfinite(float(v)) for v in losses.values())
                    if self._sync_flags(not finite)[0]:
                        bad = self._gather_bad_files()  # every rank stops here
                        if main:
                            assert logger is not None
                            logger.log_losses(self.step, {**losses, "sec_per_step": dt})
                        raise self._diverged(losses)
                    if main:
                        assert logger is not None and bar is not None
                        if self.step % cfg.log_every == 0:
                            logger.log_losses(self.step, {**losses, "sec_per_step": dt})
                        bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if k.endswith("total")}
                                        | {"s/step": f"{dt:.2f}"}, refresh=False)
                        bar.update(1)
                        if self.step % cfg.sample_every == 0:
                            grid = self.sample_grid()
                            logger.log_image("samples", self.step, grid)
                            self.write_samples(grid)
                    finished = self.step >= cfg.iterations
                    if cfg.validate_every and (self.step % cfg.validate_every == 0 or finished) and main:
                        stats = self.validate()
                        if stats:
                            assert logger is not None
                            logger.log_stats(self.step, {**stats, "train_hours": self.train_seconds / 3600})
                            log.info("step %d validation: %s", self.step,
                                     ", ".join(f"{k}={v:.4g}" for k, v in stats.items()))
                            self.track_best(stats)
                    timed = time.monotonic() - last_save > cfg.checkpoint_minutes * 60
                    stop_now, timed = self._sync_flags(stop.requested, timed)
                    if self.step % cfg.checkpoint_every == 0 or timed or stop_now or finished:
                        self.save()
                        last_save = time.monotonic()
                    if stop_now:
                        log.warning("stopped at step %d; resume with --resume", self.step)
                        break
            bad = self._gather_bad_files()  # not in `finally`: an error on one rank would leave it alone there
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()
            if main:
                self._report_bad_files(self._own_bad_files() if bad is None else bad)
        return self.step

    def _own_bad_files(self) -> dict[Path, str]:
        """The training images this rank's data set skipped (unreadable or blank) -> reason."""
        return dict(getattr(self.dataset, "bad_files", None) or {})

    def _gather_bad_files(self) -> dict[Path, str]:
        """The skipped training images of every rank -> reason: a collective, so every rank must call it."""
        found: dict[Path, str] = {}
        for bad in reversed(all_ranks(self._own_bad_files(), self.dist)):  # rank 0's reason wins
            found.update(bad)
        return found

    def _report_bad_files(self, bad: dict[Path, str]) -> None:
        """Log the skipped training images ``bad`` (path -> reason), once, at the end."""
        if bad:
            listed = "; ".join(f"{path}: {reason}" for path, reason in sorted(bad.items())[:10])
            more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
            log.warning("%d bad training image(s) were skipped (each replaced by the next file of its "
                        "folder): %s%s", len(bad), listed, more)

    def _diverged(self, losses: dict[str, float]) -> TrainingError:
        """The error that stops a run whose losses are no longer finite."""
        bad = ", ".join(f"{k}={v}" for k, v in losses.items() if not math.isfinite(float(v))) or "on another rank"
        latest = latest_checkpoint(self.run_dir)
        kept = f"the last checkpoint ({latest.name}) is kept" if latest is not None else "no checkpoint was written"
        return TrainingError(f"the losses are no longer finite at step {self.step} ({bad}): the weights diverged "
                             f"and this step is not saved; {kept}. Check the data for blank or broken images, "
                             "or resume with a lower learning rate")

    def close(self) -> None:
        cleanup_distributed()
