"""AnimeGAN training (Chen, Liu, Chen 2019; AnimeGANv2) on the shared trainer services.

Data: the AnimeGAN layout checked by :func:`facetoon.data.animegan_layout.check_animegan_layout`
(``train_photo/``, ``<style>/style``, ``<style>/smooth``, ``val/``); make the smooth copies with
``facetoon prepare-smooth``.

A step:

1. initialisation phase (the first ``init_steps`` steps): the generator alone, content loss only,
   learning rate ``init_lr`` (the paper's "initialization" epochs);
2. afterwards, as published: one discriminator update on real anime (-> 1), generated pictures,
   grayscale anime and edge-smoothed (grayscale) anime (-> 0), then one generator update with the
   adversarial, content, grayscale-style, colour (and, v2, total-variation) losses. Each
   discriminator pass judges all its inputs in one batched call (every normalisation in it is
   per sample), so spectral normalisation runs once per pass.

Optional, off by default: ``teacher`` = the path of an official CartoonGAN ``.pth`` (or an exported
folder), adding ``teacher_weight * L1(G(p), T(p))`` to the generator objective (distillation, for
faster convergence on CPU; say so in any model card).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

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
from ..models.animegan import Generator
from ..models.discriminators import PatchDiscriminator
from ..models.serialization import load_pretrained, save_pretrained
from .data import Augment, PhotoStyleDataset, load_image_tensor
from .loop import BaseTrainConfig, Trainer
from .samples import image_grid, tensor_to_uint8

__all__ = ["AnimeGANConfig", "AnimeGANTrainer"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class AnimeGANConfig(BaseTrainConfig):
    """AnimeGAN hyper-parameters; defaults follow the official v2 training script."""

    version: str = "v2"  # generator: "v2" (AnimeGANv2) or "v1" (the paper's)
    style: str = ""  # style folder name under the data root ("" = the only one present)
    img_size: int = 256
    batch_size: int = 4
    # discriminator: base width, layers, norm ("layer" for v2, "instance" for v1), spectral norm
    d_channels: int = 64
    d_layers: int = 3
    d_norm: str = "layer"
    # losses: a preset of facetoon.losses.animegan ("v1", "v2", "v2-hayao", ...) + explicit overrides
    loss_preset: str = "v2"
    adv_g: float = -1.0  # < 0: take the preset's value (same for the fields below)
    adv_d: float = -1.0
    content: float = -1.0
    style_weight: float = -1.0
    color: float = -1.0
    tv: float = -1.0
    # perceptual network: "mobilenet_v2" (ImageNet, from the TFLite file), "vgg19:PATH" (ImageNet
    # VGG19 weights you supply; conv4_4 as published) or "random" (smoke tests only)
    perceptual: str = "mobilenet_v2"
    # optimisation (official: Adam beta1 0.5; init lr 2e-4, G 2e-5, D 4e-5)
    init_steps: int = 2000  # content-only initialisation steps (the official 10 epochs, in steps)
    init_lr: float = 2e-4
    g_lr: float = 2e-5
    d_lr: float = 4e-5
    beta1: float = 0.5
    beta2: float = 0.999
    # data augmentation (the official code feeds 256x256 crops without flips)
    aug_margin: int = 0
    aug_flip: bool = False
    # optional distillation from a pretrained teacher (CartoonGAN .pth or an exported folder)
    teacher: str = ""
    teacher_weight: float = 0.0
    n_samples: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.version not in ("v1", "v2"):
            raise ValueError("version must be 'v1' or 'v2'")
        if self.teacher_weight > 0 and not self.teacher:
            raise ValueError("teacher_weight > 0 needs teacher = PATH")

    def loss_weights(self) -> AnimeGANLossWeights:
        weights = AnimeGANLossWeights.preset(self.loss_preset)
        overrides = {"adv_g": self.adv_g, "adv_d": self.adv_d, "content": self.content,
                     "style": self.style_weight, "color": self.color, "tv": self.tv}
        return weights.with_overrides(**{k: v for k, v in overrides.items() if v >= 0})


def build_perceptual(spec: str) -> nn.Module:
    """A perceptual network from its config string (see :class:`AnimeGANConfig.perceptual`)."""
    if spec == "mobilenet_v2":
        return mobilenet_v2_features()
    if spec.startswith("vgg19:"):
        return VGG19Features(spec.split(":", 1)[1])
    if spec == "random":
        return RandomFeatures()
    raise ConfigError(f"perceptual must be 'mobilenet_v2', 'vgg19:PATH' or 'random', got {spec!r}")


def load_teacher(spec: str) -> nn.Module:
    """A frozen teacher generator: an official CartoonGAN ``.pth`` or an exported weights folder."""
    path = Path(spec)
    if path.suffix == ".pth":
        from ..convert.cartoongan import load_official_cartoongan

        model = load_official_cartoongan(path)
    else:
        model = load_pretrained(path)
    model.eval().requires_grad_(False)
    return model


class AnimeGANTrainer(Trainer):
    config: AnimeGANConfig

    def build(self) -> None:
        from ..data.animegan_layout import check_animegan_layout

        cfg = self.config
        layout = check_animegan_layout(self.data_dir, cfg.style or None, require_val=False)
        self.layout = layout
        self.val_photos = list(layout.val_images or layout.photos[: cfg.n_samples])
        self.dataset = PhotoStyleDataset(layout.photos, layout.style_images, layout.smooth_images,
                                         Augment(cfg.img_size, cfg.aug_margin, cfg.aug_flip), cfg.seed)
        rt = self.runtime
        self.gen = rt.prepare_module(Generator(version=cfg.version))
        self.disc = rt.prepare_module(PatchDiscriminator(cfg.d_channels, cfg.d_layers, cfg.d_norm))
        self.criterion = AnimeGANLoss(rt.prepare_module(build_perceptual(cfg.perceptual)), cfg.loss_weights())
        self.teacher = rt.prepare_module(load_teacher(cfg.teacher)) if cfg.teacher else None
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=cfg.g_lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.d_lr, betas=betas)
        amp = rt.autocast_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler(rt.device.type, enabled=amp)
        self.scaler_d = torch.amp.GradScaler(rt.device.type, enabled=amp)
        if self.dist.enabled:
            ids = [rt.device.index] if rt.device.type == "cuda" else None
            self.gen_ddp: nn.Module = DDP(self.gen, device_ids=ids)
            self.disc_ddp: nn.Module = DDP(self.disc, device_ids=ids)
        else:
            self.gen_ddp, self.disc_ddp = self.gen, self.disc

    def warm_start_targets(self) -> tuple[dict[str, nn.Module], tuple[str, ...]]:
        """``init_from`` folder layout: generator/ (required) and discriminator/."""
        return {"generator": self.gen, "discriminator": self.disc}, ("generator",)

    def _g_step(self, loss: Tensor) -> None:
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()

    def train_step(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, float]:
        cfg, rt = self.config, self.runtime
        photo, style, smooth = (rt.prepare_input(t) for t in batch)
        n = photo.shape[0]
        self.gen.train()
        self.disc.train()
        initialising = self.step < cfg.init_steps
        for group in self.opt_g.param_groups:
            group["lr"] = cfg.init_lr if initialising else cfg.g_lr

        with rt.autocast():
            fake = self.gen_ddp(photo)
        if initialising:
            with rt.autocast():
                g_total, parts = self.criterion.init_loss(photo, fake)
            self._g_step(g_total)
            return {"g_total": float(g_total.detach()), "g_content": float(parts["content"])}

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
                    with torch.no_grad():
                        target = self.teacher(photo)
                    distill = F.l1_loss(fake.float(), target.float())
                    g_total = g_total + cfg.teacher_weight * distill
                    g_parts["teacher"] = distill.detach()
            self._g_step(g_total)
        finally:
            self.disc.requires_grad_(True)
        out = {"d_total": float(d_total.detach()), "g_total": float(g_total.detach())}
        out |= {f"d_{k.removeprefix('d_')}": float(v) for k, v in d_parts.items()}
        out |= {f"g_{k}": float(v) for k, v in g_parts.items()}
        return out

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.state_dict(), "disc": self.disc.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.load_state_dict(state["gen"])
        self.disc.load_state_dict(state["disc"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
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
        x = torch.stack([load_image_tensor(p, self.config.img_size) for p in self.val_photos[: self.config.n_samples]])
        fake = self._run(self.gen, x)
        self.gen.train()
        teach = self._run(self.teacher, x) if self.teacher is not None else None
        rows = []
        for i in range(x.shape[0]):
            row = [tensor_to_uint8(x[i]), tensor_to_uint8(fake[i])]
            if teach is not None:
                row.append(tensor_to_uint8(teach[i]))
            rows.append(row)
        return image_grid(rows)

    def export(self, out_dir: str | os.PathLike[str], fp16: bool = False, discriminators: bool = False) -> Path:
        """Write ``generator/`` (and ``discriminator/`` if asked) as config.json + model.safetensors."""
        out = Path(out_dir)
        meta = {"step": self.step, "train_hours": round(self.train_seconds / 3600, 3),
                "trainer": "facetoon train animegan", "config": dataclasses.asdict(self.config)}
        dtype = torch.float16 if fp16 else None
        save_pretrained(self.gen, out / "generator", dtype=dtype, meta=meta)
        if discriminators:
            save_pretrained(self.disc, out / "discriminator", dtype=dtype, meta=meta)
        return out
