"""AnimeGAN training (Chen, Liu, Chen 2019; AnimeGANv2) on the shared trainer services.

Data: the AnimeGAN layout checked by :func:`facetoon.data.animegan_layout.check_animegan_layout`
(``train_photo/``, ``<style>/style``, ``<style>/smooth``, ``val/``); make the smooth copies with
``facetoon prepare-smooth``.

A step:

1. initialisation phase (the first ``init_steps`` steps): the generator alone, content loss only,
   learning rate ``init_lr`` (the paper's "initialization" epochs; with ``teacher_init`` the
   distillation term below as well);
2. afterwards, as published: one discriminator update on real anime (-> 1), generated pictures,
   grayscale anime and edge-smoothed (grayscale) anime (-> 0), then one generator update with the
   adversarial, content, grayscale-style, colour (and, v2, total-variation) losses. Each
   discriminator pass judges all its inputs in one batched call (every normalisation in it is
   per sample), so spectral normalisation runs once per pass.

Validation (every ``validate_every`` steps, main rank): KIDx100 between the generator's outputs on
the held-out photos of ``val/`` and ``holdout`` style images kept out of training (a fixed,
seeded split; ``holdout = 0``, the default, trains on every style image as published and
computes no KID). Both sides are seen at ``img_size`` (the style images are resized like the
photos), so the metric does not reward or punish a resolution difference.

Optional, off by default: ``teacher`` = the path of an official CartoonGAN ``.pth`` (or an exported
folder), adding ``teacher_weight * L1(G(p), T(p))`` to the generator objective (distillation, for
faster convergence on CPU; say so in any model card).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..errors import ConfigError
from ..losses.animegan import (
    AnimeGANLoss,
    AnimeGANLossWeights,
    RandomFeatures,
    VGG19Features,
    grayscale_rgb,
    mobilenet_v2_features,
)
from ..models.animegan import Generator, NormKind
from ..models.discriminators import PatchDiscriminator
from ..models.serialization import export_model_folder, load_pretrained, save_pretrained
from .data import Augment, PhotoStyleDataset, load_image_tensor, split_holdout, usable_images
from .loop import BaseTrainConfig, Trainer, check_data_options
from .optim import adam, set_lr, use_fused
from .samples import image_grid, tensor_to_uint8

__all__ = ["AnimeGANConfig", "AnimeGANTrainer"]

log = logging.getLogger(__name__)


#: What depends on the version when not set explicitly: the official code of each version
#: (AnimeGAN: TachibanaYoshino/AnimeGAN main.py and its discriminator with instance norm;
#: AnimeGANv2: TachibanaYoshino/AnimeGANv2 main.py, layer norm in the discriminator), including
#: the batch size of its main.py (v2: 12, v1: 6); except v1's loss weights, which are the paper's
#: (preset ``v1``; the v1 code's own values are the preset ``v1-code``).
VERSION_DEFAULTS: dict[str, dict[str, Any]] = {
    "v1": {"d_norm": "instance", "loss_preset": "v1", "init_lr": 1e-4, "g_lr": 4e-5, "d_lr": 8e-5,
           "batch_size": 6},
    "v2": {"d_norm": "layer", "loss_preset": "v2", "init_lr": 2e-4, "g_lr": 2e-5, "d_lr": 4e-5,
           "batch_size": 12},
}

#: config field -> :class:`AnimeGANLossWeights` field, of the loss weights a config may set
LOSS_WEIGHT_FIELDS = {"adv_g": "adv_g", "adv_d": "adv_d", "content": "content", "style_weight": "style",
                      "color": "color", "tv": "tv", "d_real": "d_real", "d_fake": "d_fake", "d_gray": "d_gray",
                      "d_smooth": "d_smooth"}


@dataclasses.dataclass
class AnimeGANConfig(BaseTrainConfig):
    """AnimeGAN hyper-parameters; defaults follow the official v2 training code (main.py), except
    ``perceptual`` (MobileNetV2 features: VGG19's ImageNet weights are not available offline),
    ``init_steps`` and ``iterations`` (counted in steps, where the official code counts epochs);
    the comments at each field say more."""

    version: str = "v2"  # generator: "v2" (AnimeGANv2) or "v1" (the paper's)
    style: str = ""  # style folder name under the data root ("" = the only one present)
    img_size: int = 256
    # 0: the version's official batch size (main.py: v2 12, v1 6); configs/animegan_anime_cpu.toml
    # chooses 4 for CPU time
    batch_size: int = 0
    # discriminator: base width, layers, norm ("layer" for v2, "instance" for v1), spectral norm
    d_channels: int = 64
    d_layers: int = 3
    d_norm: str = "auto"  # "auto": the version's official choice ("instance" for v1, "layer" for v2)
    # losses: a preset of facetoon.losses.animegan ("v1", "v2", "v2-hayao", ...) + explicit overrides;
    # "auto": the version's own preset
    loss_preset: str = "auto"
    # < 0 (the default): the preset's value (same for the fields below). The config holds the
    # resolved numbers (export metadata records them); config.toml and checkpoints keep the -1, so
    # that the weights follow a later change of loss_preset or version (see placeholders()). Configs
    # written by facetoon 0.1.x hold the numbers, which then stay as they are (explicit values)
    adv_g: float = -1.0
    adv_d: float = -1.0
    content: float = -1.0
    style_weight: float = -1.0
    color: float = -1.0
    tv: float = -1.0
    # the discriminator's terms: real anime (-> 1), generated, grayscale and smoothed anime (-> 0)
    d_real: float = -1.0
    d_fake: float = -1.0
    d_gray: float = -1.0
    d_smooth: float = -1.0
    # perceptual network: "mobilenet_v2" (ImageNet, from the TFLite file), "vgg19:PATH" (ImageNet
    # VGG19 weights you supply; conv4_4 as published) or "random" (smoke tests only)
    perceptual: str = "mobilenet_v2"
    # optimisation (official: Adam beta1 0.5; learning rates < 0 take the version's official values,
    # see VERSION_DEFAULTS: v2 init 2e-4, G 2e-5, D 4e-5; v1 init 1e-4, G 4e-5, D 8e-5)
    # content-only initialisation steps. The official code counts epochs of
    # int(max(#photos, #style images) / batch_size) steps: v2 main.py --init_epoch 10 (of --epoch 101
    # in all), v1 main.py --init_epoch 1; in steps that depends on the data, so 2000 is facetoon's
    # choice, not an official value: set about 10 epochs' worth of steps to follow v2
    init_steps: int = 2000
    init_lr: float = -1.0
    g_lr: float = -1.0
    d_lr: float = -1.0
    beta1: float = 0.5
    beta2: float = 0.999
    # data augmentation (the official code feeds 256x256 crops without flips)
    aug_margin: int = 0
    aug_flip: bool = False
    # validation: style images kept out of training as the KID reference (0 = train on all of
    # them, as published, and compute no KID); the held-out photos are those of val/
    holdout: int = 0
    holdout_seed: int = 1234  # fixed, so the validation split is the same across runs
    kid_images: int = 100  # held-out images per side used for the validation KID (0 = no KID)
    kid_backend: str = "litert"  # MobileNetV2 features: "litert" (the reference int8 model) or "torch"
    # optional distillation from a pretrained teacher (CartoonGAN .pth or an exported folder)
    teacher: str = ""
    teacher_weight: float = 0.0
    # also distil during the initialisation phase (content + teacher_weight * L1 at init_lr): a
    # CPU-time choice that starts the adversarial phase from the teacher's style rather than from an
    # identity-like generator; off = the papers' content-only initialisation. The adversarial phase
    # distils whenever teacher_weight > 0, so past init_steps this option changes nothing
    teacher_init: bool = False
    n_samples: int = 4

    def __post_init__(self) -> None:
        if self.version not in ("v1", "v2"):
            raise ConfigError("version must be 'v1' or 'v2'")
        # the one place placeholders are resolved. Settings left at "auto" / < 0 (batch_size: 0)
        # become the version's official values, before the base checks, which need a batch size;
        # then loss weights left < 0 become the preset's (explicit values win)
        self._placeholders: dict[str, tuple[Any, Any]] = {}  # option -> (as given, as resolved)
        for key, value in VERSION_DEFAULTS[self.version].items():
            current = getattr(self, key)
            if current == "auto" or (isinstance(current, float) and current < 0) or \
                    (key == "batch_size" and current == 0):
                self._placeholders[key] = (current, value)
                setattr(self, key, value)
        super().__post_init__()
        preset = AnimeGANLossWeights.preset(self.loss_preset)
        for key, term in LOSS_WEIGHT_FIELDS.items():
            if getattr(self, key) < 0:
                self._placeholders[key] = (getattr(self, key), getattr(preset, term))
                setattr(self, key, getattr(preset, term))
        if self.teacher_weight < 0:
            raise ConfigError(f"teacher_weight must be >= 0, got {self.teacher_weight}")
        if self.teacher_weight > 0 and not self.teacher:
            raise ConfigError("teacher_weight > 0 needs teacher = PATH")
        if self.teacher_init and not (self.teacher and self.teacher_weight > 0):
            raise ConfigError("teacher_init = true needs teacher = PATH and teacher_weight > 0")
        check_data_options(holdout=self.holdout, kid_images=self.kid_images, kid_backend=self.kid_backend,
                           n_samples=self.n_samples, aug_margin=self.aug_margin)
        self._check_sizes_and_choices()

    def _check_sizes_and_choices(self) -> None:
        """Values the networks or the optimiser would otherwise refuse at build time or the first step
        (after a ``--dry-run`` had passed them)."""
        multiple = 4 if self.version == "v1" else 1  # models.animegan.Generator.size_multiple
        if self.img_size < 8 or self.img_size % multiple:
            raise ConfigError(f"img_size must be >= 8{' and a multiple of 4 (v1)' if multiple > 1 else ''}, "
                              f"got {self.img_size}")
        if self.perceptual == "mobilenet_v2" and self.img_size < 32:  # models.mobilenet_v2._check_input
            raise ConfigError(f"img_size must be >= 32 with perceptual = 'mobilenet_v2' (the smallest input "
                              f"of MobileNetV2), got {self.img_size}")
        if self.d_channels < 2 or self.d_layers < 1:
            raise ConfigError(f"need d_channels >= 2 and d_layers >= 1, got {self.d_channels}, {self.d_layers}")
        if self.d_norm not in ("layer", "instance"):
            raise ConfigError(f"d_norm must be 'auto', 'layer' or 'instance', got {self.d_norm!r}")
        if self.init_steps < 0:
            raise ConfigError(f"init_steps must be >= 0, got {self.init_steps}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.holdout_seed < 0:
            raise ConfigError(f"holdout_seed must be >= 0, got {self.holdout_seed}")
        if self.perceptual not in ("mobilenet_v2", "random") and not (
                self.perceptual.startswith("vgg19:") and len(self.perceptual) > len("vgg19:")):
            raise ConfigError(f"perceptual must be 'mobilenet_v2', 'vgg19:PATH' or 'random', got {self.perceptual!r}")

    def placeholders(self) -> dict[str, Any]:
        """The options left to the version or the loss preset, each with the placeholder it was given
        as (``"auto"``, ``-1.0``, ``batch_size = 0``): :func:`~facetoon.train.config.save_config` and
        checkpoints write these instead of the resolved values, so that a changed ``version`` or
        ``loss_preset`` (``--resume --set loss_preset=...``, a copied config.toml) re-derives them
        all. An option set to another value since is explicit (not listed); ``dataclasses.replace``
        passes the resolved values on as explicit ones."""
        return {k: given for k, (given, resolved) in self._placeholders.items() if getattr(self, k) == resolved}

    def loss_weights(self) -> AnimeGANLossWeights:
        """This config's ten loss weights (the preset's where left unset)."""
        weights = {term: getattr(self, key) for key, term in LOSS_WEIGHT_FIELDS.items()}
        return AnimeGANLossWeights().with_overrides(**weights)


def build_perceptual(spec: str) -> nn.Module:
    """A perceptual network from its config string (see :class:`AnimeGANConfig.perceptual`)."""
    if spec == "mobilenet_v2":
        return mobilenet_v2_features()
    if spec.startswith("vgg19:"):
        return VGG19Features(spec.split(":", 1)[1])
    if spec == "random":
        return RandomFeatures()
    raise ConfigError(f"perceptual must be 'mobilenet_v2', 'vgg19:PATH' or 'random', got {spec!r}")


def load_teacher(spec: str, img_size: int) -> nn.Module:
    """A frozen teacher generator: an official CartoonGAN ``.pth``, or a CartoonGAN or AnimeGAN
    weights folder (a ``facetoon export`` output too). Another architecture is a WeightsError here,
    and an ``img_size`` the teacher does not take (CartoonGAN: multiples of 4) a ConfigError, both
    before any training step."""
    path = Path(spec)
    if path.suffix == ".pth":
        from ..convert.cartoongan import load_official_cartoongan

        model: nn.Module = load_official_cartoongan(path)
    else:
        model = load_pretrained(export_model_folder(path), archs=("cartoongan", "animegan"))
    multiple, smallest = int(getattr(model, "size_multiple", 1)), int(getattr(model, "min_size", 1))
    if img_size % multiple or img_size < smallest:
        raise ConfigError(f"img_size must be a multiple of {multiple} and >= {smallest} for the teacher {spec} "
                          f"({getattr(model, 'arch', type(model).__name__)} input sizes), got {img_size}")
    model.eval().requires_grad_(False)
    return model


class AnimeGANTrainer(Trainer):
    config: AnimeGANConfig

    def build_networks(self) -> None:
        cfg, rt = self.config, self.runtime
        # version is checked in AnimeGANConfig.__post_init__, d_norm by PatchDiscriminator
        version = cast(Literal["v1", "v2"], cfg.version)
        self.gen = rt.prepare_module(Generator(version=version))
        self.disc = rt.prepare_module(PatchDiscriminator(cfg.d_channels, cfg.d_layers, cast(NormKind, cfg.d_norm)))
        betas = (cfg.beta1, cfg.beta2)
        # as in the official code: the initialisation phase has its own Adam, so the adversarial
        # phase starts with fresh moments
        self.opt_init = adam(self.gen.parameters(), lr=cfg.init_lr, betas=betas)
        self.opt_g = adam(self.gen.parameters(), lr=cfg.g_lr, betas=betas)
        self.opt_d = adam(self.disc.parameters(), lr=cfg.d_lr, betas=betas)
        amp = rt.autocast_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler(rt.device.type, enabled=amp)
        self.scaler_d = torch.amp.GradScaler(rt.device.type, enabled=amp)
        if self.dist.enabled:
            ids = [rt.device.index] if rt.device.type == "cuda" else None
            self.gen_ddp: nn.Module = DDP(self.gen, device_ids=ids)
            self.disc_ddp: nn.Module = DDP(self.disc, device_ids=ids)
        else:
            self.gen_ddp, self.disc_ddp = self.gen, self.disc

    def build_data(self) -> None:
        """The photo/style data, the loss networks (perceptual, optional teacher)."""
        from ..data.animegan_layout import check_animegan_layout

        cfg, rt = self.config, self.runtime
        layout = check_animegan_layout(self.require_data_dir(), cfg.style or None, require_val=False)
        self.layout = layout
        self.val_photos = list(layout.val_images or layout.photos[: cfg.n_samples])
        # style images and their smooth copies share file names: hold out the same ones
        train_style, self.val_style = split_holdout(layout.style_images, cfg.holdout, cfg.holdout_seed)
        smooth_of = {p.name: p for p in layout.smooth_images}
        train_smooth = [smooth_of[p.name] for p in train_style]
        self.val_photos = usable_images(self.val_photos, "validation photo")
        self.val_style = usable_images(self.val_style, "held-out style")
        self.dataset = PhotoStyleDataset(layout.photos, train_style, train_smooth,
                                         Augment(cfg.img_size, cfg.aug_margin, cfg.aug_flip), cfg.seed)
        self._kid_reference: np.ndarray | None = None
        self._kid_warned = False
        self.criterion = AnimeGANLoss(rt.prepare_module(build_perceptual(cfg.perceptual)), cfg.loss_weights())
        self.teacher = rt.prepare_module(load_teacher(cfg.teacher, cfg.img_size)) if cfg.teacher else None

    def warm_start_targets(self) -> tuple[dict[str, nn.Module], tuple[str, ...]]:
        """``init_from`` folder layout: generator/ (required) and discriminator/."""
        return {"generator": self.gen, "discriminator": self.disc}, ("generator",)

    def ema_source(self) -> nn.Module:
        return self.gen

    def _g_step(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss).backward()
        self.scaler_g.step(optimizer)
        self.scaler_g.update()

    def _distillation(self, photo: Tensor, fake: Tensor) -> Tensor:
        """``L1(G(photo), T(photo))``, the mean absolute difference to the frozen teacher's output
        (both ``(N, 3, H, W)`` in [-1, 1] RGB), in fp32."""
        if self.teacher is None:  # the config checks make this unreachable
            raise RuntimeError("distillation without a teacher")
        with torch.no_grad():
            target = self.teacher(photo)
        return F.l1_loss(fake.float(), target.float())

    def train_step(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, float]:
        cfg, rt = self.config, self.runtime
        photo, style, smooth = (rt.prepare_input(t) for t in batch)
        n = photo.shape[0]
        self.gen.train()
        self.disc.train()
        ramp = self.lr_ramp()  # 1 except just after an init_from warm start (warm_start_lr_ramp)
        for opt, lr in ((self.opt_init, cfg.init_lr), (self.opt_g, cfg.g_lr), (self.opt_d, cfg.d_lr)):
            set_lr(opt, lr * ramp)
        initialising = self.step < cfg.init_steps
        if self.step == cfg.init_steps and self.ema is not None:
            self.ema.restart()  # average the adversarial phase only, not the initialisation

        with rt.autocast():
            fake = self.gen_ddp(photo)
        if initialising:
            with rt.autocast():
                g_total, parts = self.criterion.init_loss(photo, fake)
                if cfg.teacher_init:
                    distill = self._distillation(photo, fake)
                    g_total = g_total + cfg.teacher_weight * distill
                    parts["teacher"] = distill.detach()
            self._g_step(g_total, self.opt_init)
            return {"g_total": float(g_total.detach())} | {f"g_{k}": float(v) for k, v in parts.items()} \
                | {"lr": cfg.init_lr * ramp}

        # discriminator: anime -> 1; generated, grayscale anime, smoothed anime -> 0
        gray = grayscale_rgb(style)
        smooth_gray = grayscale_rgb(smooth)
        self.opt_d.zero_grad(set_to_none=True)
        with rt.autocast():
            logits = self.disc_ddp(torch.cat([style, fake.detach(), gray, smooth_gray]))
        real_l, fake_l, gray_l, smooth_l = logits.float().split(n)
        d_total, d_parts = self.criterion.discriminator_loss(real_l, fake_l, gray_l, smooth_l)
        self.scaler_d.scale(d_total).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()

        # generator, judged by the updated (frozen) discriminator
        self.disc.requires_grad_(False)
        try:
            with rt.autocast():
                g_logits = self.disc(fake)
                g_total, g_parts = self.criterion.generator_loss(photo, fake, gray, g_logits.float())
                if self.teacher is not None and cfg.teacher_weight > 0:
                    distill = self._distillation(photo, fake)
                    g_total = g_total + cfg.teacher_weight * distill
                    g_parts["teacher"] = distill.detach()
            self._g_step(g_total, self.opt_g)
        finally:
            self.disc.requires_grad_(True)
        out = {"d_total": float(d_total.detach()), "g_total": float(g_total.detach())}
        out |= {f"d_{k.removeprefix('d_')}": float(v) for k, v in d_parts.items()}
        out |= {f"g_{k}": float(v) for k, v in g_parts.items()}
        out["lr"] = cfg.g_lr * ramp  # the generator's (the critic's is d_lr / g_lr times it)
        return out

    def fit(self) -> int:
        """:meth:`Trainer.fit`; a run that ends within the initialisation phase says so."""
        step = super().fit()
        if step >= self.config.iterations and self.dist.is_main:
            self._warn_if_content_only("the run ended")
        return step

    def _warn_if_content_only(self, what: str) -> None:
        """A warning when the generator has had only the content-only initialisation."""
        if 0 < self.step <= self.config.init_steps:
            phase = "content and distillation" if self.config.teacher_init else "content-only"
            log.warning("%s at step %d, within the initialisation (init_steps = %d): only the %s "
                        "initialisation ran, the generator has never been trained adversarially", what,
                        self.step, self.config.init_steps, phase)

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.state_dict(), "disc": self.disc.state_dict(),
                "opt_init": self.opt_init.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(),
                "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.load_state_dict(state["gen"])
        self.disc.load_state_dict(state["disc"])
        if "opt_init" in state:
            self.opt_init.load_state_dict(state["opt_init"])
            self.opt_g.load_state_dict(state["opt_g"])
        elif self.step <= self.config.init_steps:
            # checkpoints of facetoon <= 0.1.0 had one generator Adam for both phases: until the
            # end of the initialisation phase its moments are the initialisation optimiser's
            self.opt_init.load_state_dict(state["opt_g"])
        else:
            self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for opt in (self.opt_init, self.opt_g, self.opt_d):
            use_fused(opt)
        if state.get("scaler_g"):
            self.scaler_g.load_state_dict(state["scaler_g"])
            self.scaler_d.load_state_dict(state["scaler_d"])

    # ---- samples and export ----------------------------------------------------------------------
    @torch.no_grad()
    def _run(self, model: nn.Module, x: Tensor) -> Tensor:
        model.eval()
        with self.runtime.autocast():
            y = model(self.runtime.prepare_input(x))
        return y.float().cpu()

    def sample_grid(self) -> np.ndarray:
        """Rows per validation photo: photo | generated (| teacher)."""
        self.require_data_dir()  # a ConfigError, not an AttributeError, without data
        x = torch.stack([load_image_tensor(p, self.config.img_size) for p in self.val_photos[: self.config.n_samples]])
        fake = self._run(self.averaged(self.gen), x)
        self.gen.train()
        teach = self._run(self.teacher, x) if self.teacher is not None else None
        rows = []
        for i in range(x.shape[0]):
            row = [tensor_to_uint8(x[i]), tensor_to_uint8(fake[i])]
            if teach is not None:
                row.append(tensor_to_uint8(teach[i]))
            rows.append(row)
        return image_grid(rows)

    def _val_batch(self, files: list[Path]) -> Tensor:
        """``(N, 3, img_size, img_size)`` in [-1, 1]: the files resized, without augmentation."""
        return torch.stack([load_image_tensor(p, self.config.img_size) for p in files])

    def validate(self) -> dict[str, float]:
        """KIDx100 (and its std over subsets) between G(held-out photos of ``val/``) and the
        held-out style images, both at ``img_size``; ``{}`` when either side has < 2 images.
        With a weight average (``ema_decay > 0``), G is the average and ``kid_x100_live`` the
        trained weights' KID."""
        self.require_data_dir()  # a ConfigError, not an AttributeError, without data
        cfg = self.config
        if cfg.kid_images <= 0:
            return {}
        photos = list(self.layout.val_images[:cfg.kid_images])
        styles = self.val_style[:cfg.kid_images]
        if len(photos) < 2 or len(styles) < 2:
            if not self._kid_warned and cfg.holdout == 0:  # the default: no KID asked for
                log.info("no validation KID: holdout = 0 keeps no style images out of training (set "
                         "holdout >= 2 for one)")
            elif not self._kid_warned:
                lacking = [f"{len(photos)} photo(s) in val/"] if len(photos) < 2 else []
                lacking += [f"holdout = {cfg.holdout} style image(s)"] if len(styles) < 2 else []
                log.warning("no validation KID: it needs at least 2 images per side, got %s",
                            " and ".join(lacking))
            self._kid_warned = True
            return {}
        from ..metrics.features import extract_features
        from ..metrics.kid import validation_kid_x100

        if self._kid_reference is None:
            self._kid_reference = np.concatenate([
                extract_features(self._val_batch(styles[i:i + 16]), backend=cfg.kid_backend)
                for i in range(0, len(styles), 16)])

        def kid_x100(gen: nn.Module) -> dict[str, float]:
            fakes = [self._run(gen, self._val_batch(photos[i:i + 16])) for i in range(0, len(photos), 16)]
            self.gen.train()
            features = extract_features(torch.cat(fakes), backend=cfg.kid_backend)
            return validation_kid_x100(features, self._kid_reference)

        stats = kid_x100(self.averaged(self.gen))
        if self.averaged(self.gen) is not self.gen:
            stats["kid_x100_live"] = kid_x100(self.gen)["kid_x100"]
        return stats

    def export(self, out_dir: str | os.PathLike[str], fp16: bool = False, discriminators: bool = False) -> Path:
        """Write the generator as config.json + model.safetensors.

        Inference export: ``generator/``, the weight average when ``ema_decay > 0``.
        ``discriminators=True`` writes the training state ``init_from`` reads instead:
        ``generator/`` (the trained weights), ``discriminator/`` and, with a weight average,
        ``ema_generator/``.
        """
        out = Path(out_dir)
        self._warn_if_content_only("exporting")
        meta = {"step": self.step, "train_hours": round(self.train_seconds / 3600, 3),
                "trainer": "facetoon train animegan", "config": self.trained_config()}
        dtype = torch.float16 if fp16 else None
        nets: dict[str, nn.Module] = {"generator": self.averaged(self.gen)}
        if discriminators:
            nets = {"generator": self.gen, "discriminator": self.disc}
            if self.averaged(self.gen) is not self.gen:
                nets["ema_generator"] = self.averaged(self.gen)
        for name, net in nets.items():
            save_pretrained(net, out / name, dtype=dtype, meta={**meta, **self.weights_meta(net)})
        return out
