"""U-GAT-IT training on an unpaired two-domain folder (``DATA/trainA``, ``DATA/trainB``).

One step follows the authors' release (discriminators first, then generators) with two exact
economies: the generator forward pass of a step is shared by the discriminator update and the
generator update (the generators' weights do not change in between), and each discriminator
judges real and fake images in one batched call. Every normalisation in these networks is
per sample, so batching changes no result, with one exception: spectral normalisation's power
iteration runs once per discriminator call in training mode, so twice per step here (the batched
call of the discriminator update, the call of the generator update) where the official code,
calling each discriminator three times (real, fake, fake again), runs it three times. The
estimate of the largest singular value converges either way (SN-GAN uses one iteration per
update); the model is the same.

Code names -> paper: ``a2b`` = G_{s->t}, ``b2a`` = G_{t->s}; ``ga``/``la`` = global/local
discriminators of domain A (judging B->A translations), ``gb``/``lb`` of domain B.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..errors import ConfigError
from ..layers import clip_rho, normal_init_
from ..losses.ugatit import (
    DiscOutput,
    UGATITLossWeights,
    discriminator_adversarial_loss,
    generator_adversarial_loss,
    generator_cam_loss,
)
from ..models.serialization import save_pretrained
from ..models.ugatit import Discriminator, Generator
from .data import Augment, UnpairedDataset, list_images, load_image_tensor, split_holdout, usable_images
from .loop import BaseTrainConfig, Trainer, check_data_options
from .optim import adam, set_lr, use_fused
from .samples import heatmap_overlay, image_grid, tensor_to_uint8

__all__ = ["UGATITConfig", "UGATITTrainer", "GeneratorPair", "DiscriminatorSet"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class UGATITConfig(BaseTrainConfig):
    """U-GAT-IT hyper-parameters; defaults are the paper's / the authors' release."""

    # networks
    img_size: int = 256
    ngf: int = 64
    ndf: int = 64
    n_res: int = 4
    light: bool = False
    n_layers_global: int = 7
    n_layers_local: int = 5
    # initialisation: every conv / linear weight ~ N(0, init_std), biases 0, as the paper (and its
    # TensorFlow release); 0 = PyTorch's default initialisation, as the authors' PyTorch release
    init_std: float = 0.02
    # optimisation (Adam as published; linear decay to 0 over the second half)
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 1e-4
    decay_start: float = 0.5  # fraction of `iterations` after which lr decays linearly to 0 (1.0 = off)
    # loss weights
    adv_weight: float = 1.0
    cycle_weight: float = 10.0
    identity_weight: float = 10.0
    cam_weight: float = 1000.0
    # data
    aug_margin: int = 30  # resize to img_size + margin, random crop back to img_size
    aug_flip: bool = True
    holdout: int = 100  # images per domain kept out of training for validation
    holdout_seed: int = 1234  # fixed, so the validation split is the same across runs
    n_samples: int = 4  # validation images per direction in the sample grids
    kid_images: int = 100  # held-out images used for the validation KID (0 = no KID)
    kid_backend: str = "litert"  # MobileNetV2 features: "litert" (the reference int8 model) or "torch"

    def __post_init__(self) -> None:
        super().__post_init__()
        # sizes and counts of the networks: a 0 or a negative value would otherwise fail at the first
        # step with a shape error from torch (or build an empty network)
        for name in ("ngf", "ndf", "img_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_res < 0:
            raise ConfigError(f"n_res (residual blocks) must be >= 0, got {self.n_res}")
        if self.img_size % 4:
            raise ConfigError("img_size must be a multiple of 4")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.holdout_seed < 0:
            raise ConfigError(f"holdout_seed must be >= 0, got {self.holdout_seed}")
        if not 0.0 <= self.decay_start <= 1.0:
            raise ConfigError("decay_start must be in [0, 1]")
        check_data_options(holdout=self.holdout, kid_images=self.kid_images, kid_backend=self.kid_backend,
                           n_samples=self.n_samples, aug_margin=self.aug_margin)
        for name in ("adv_weight", "cycle_weight", "identity_weight", "cam_weight", "lr", "weight_decay", "init_std"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        for name in ("n_layers_global", "n_layers_local"):
            # n_layers - 2 halvings must leave >= 3 px for the last two reflection-padded 4x4 convs
            n = getattr(self, name)
            if n < 3 or self.img_size >> (n - 2) < 3:
                raise ConfigError(f"{name}={n} does not fit img_size={self.img_size} (needs 3 <= {name} "
                                  f"and img_size / 2**({name} - 2) >= 3)")

    def loss_weights(self) -> UGATITLossWeights:
        return UGATITLossWeights(self.adv_weight, self.cycle_weight, self.identity_weight, self.cam_weight)


class GeneratorPair(nn.Module):
    """Both generators; ``forward`` runs every generator pass of a training step.

    ``forward(real_a (B,3,S,S), real_b (B,3,S,S))`` returns a dict of images in [-1, 1] and CAM
    logits: ``a2b, b2a`` (translations), ``a2b2a, b2a2b`` (cycles), ``a2a, b2b`` (identities),
    ``cam_a2b_src/cam_a2b_tgt`` (G_a2b's CAM logits on A and on B) and ``cam_b2a_src/cam_b2a_tgt``.
    """

    def __init__(self, **generator_kwargs: Any) -> None:
        super().__init__()
        self.a2b = Generator(**generator_kwargs)
        self.b2a = Generator(**generator_kwargs)

    def forward(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        n = real_a.shape[0]
        out_ab, cam_ab, _ = self.a2b(torch.cat([real_a, real_b]))  # translation A->B, identity B->B
        out_ba, cam_ba, _ = self.b2a(torch.cat([real_b, real_a]))  # translation B->A, identity A->A
        a2b, b2b = out_ab[:n], out_ab[n:]
        b2a, a2a = out_ba[:n], out_ba[n:]
        a2b2a, _, _ = self.b2a(a2b)
        b2a2b, _, _ = self.a2b(b2a)
        return dict(a2b=a2b, b2a=b2a, a2b2a=a2b2a, b2a2b=b2a2b, a2a=a2a, b2b=b2b,
                    cam_a2b_src=cam_ab[:n], cam_a2b_tgt=cam_ab[n:],
                    cam_b2a_src=cam_ba[:n], cam_b2a_tgt=cam_ba[n:])


class DiscriminatorSet(nn.Module):
    """The four discriminators. ``forward(x_a, x_b)`` -> (outputs of [ga, la] on x_a, of [gb, lb] on x_b)."""

    def __init__(self, ndf: int, n_layers_global: int, n_layers_local: int) -> None:
        super().__init__()
        self.ga = Discriminator(ndf, n_layers_global)
        self.la = Discriminator(ndf, n_layers_local)
        self.gb = Discriminator(ndf, n_layers_global)
        self.lb = Discriminator(ndf, n_layers_local)

    def forward(self, x_a: Tensor, x_b: Tensor) -> tuple[list[DiscOutput], list[DiscOutput]]:
        return [self.ga(x_a), self.la(x_a)], [self.gb(x_b), self.lb(x_b)]


def _split(outputs: list[DiscOutput], n: int) -> tuple[list[DiscOutput], list[DiscOutput]]:
    """Split batched discriminator outputs into the first ``n`` samples and the rest."""
    return ([cast(DiscOutput, tuple(t[:n] for t in o)) for o in outputs],
            [cast(DiscOutput, tuple(t[n:] for t in o)) for o in outputs])


class UGATITTrainer(Trainer):
    config: UGATITConfig

    # ---- set-up ---------------------------------------------------------------------------------
    def build_networks(self) -> None:
        cfg = self.config
        rt = self.runtime
        gens = GeneratorPair(ngf=cfg.ngf, n_res=cfg.n_res, img_size=cfg.img_size, light=cfg.light)
        discs = DiscriminatorSet(cfg.ndf, cfg.n_layers_global, cfg.n_layers_local)
        if cfg.init_std > 0:  # a resume or warm start overwrites these weights afterwards
            normal_init_(gens, cfg.init_std)
            normal_init_(discs, cfg.init_std)
        self.gens = rt.prepare_module(gens)
        self.discs = rt.prepare_module(discs)
        settings: dict[str, Any] = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
        self.opt_g = adam(self.gens.parameters(), **settings)
        self.opt_d = adam(self.discs.parameters(), **settings)
        amp = rt.autocast_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler(rt.device.type, enabled=amp)
        self.scaler_d = torch.amp.GradScaler(rt.device.type, enabled=amp)
        if self.dist.enabled:
            ids = [rt.device.index] if rt.device.type == "cuda" else None
            self.gens_ddp: nn.Module = DDP(self.gens, device_ids=ids)
            self.discs_ddp: nn.Module = DDP(self.discs, device_ids=ids)
        else:
            self.gens_ddp, self.discs_ddp = self.gens, self.discs

    def build_data(self) -> None:
        cfg, root = self.config, self.require_data_dir()
        files_a = list_images(root / "trainA")
        files_b = list_images(root / "trainB")
        self.train_a, self.val_a = split_holdout(files_a, cfg.holdout, cfg.holdout_seed)
        self.train_b, self.val_b = split_holdout(files_b, cfg.holdout, cfg.holdout_seed)
        if not self.val_a and (root / "testA").is_dir():
            self.val_a = list_images(root / "testA")
        if not self.val_b and (root / "testB").is_dir():
            self.val_b = list_images(root / "testB")
        self.val_a = usable_images(self.val_a, "validation (domain A)")
        self.val_b = usable_images(self.val_b, "validation (domain B)")
        self.dataset = UnpairedDataset(
            self.train_a, self.train_b, Augment(cfg.img_size, cfg.aug_margin, cfg.aug_flip), cfg.seed)
        self._kid_reference: np.ndarray | None = None
        self._kid_warned = False

    def warm_start_targets(self) -> tuple[dict[str, nn.Module], tuple[str, ...]]:
        """``init_from`` folder layout: a2b/ and b2a/ (required), disc_ga/ disc_la/ disc_gb/ disc_lb/."""
        targets = {"a2b": self.gens.a2b, "b2a": self.gens.b2a, "disc_ga": self.discs.ga,
                   "disc_la": self.discs.la, "disc_gb": self.discs.gb, "disc_lb": self.discs.lb}
        return targets, ("a2b", "b2a")

    def ema_source(self) -> nn.Module:
        return self.gens

    # ---- one step ----------------------------------------------------------------------------------
    def _set_lr(self) -> float:
        cfg = self.config
        start = int(cfg.iterations * cfg.decay_start)
        factor = 1.0
        # as the official code: step s (1-based) > start trains at lr * (iterations - s) / (iterations - start),
        # so the last step's lr is 0
        s = self.step + 1
        if cfg.decay_start < 1.0 and s > start:
            factor = max(0.0, (cfg.iterations - s) / max(1, cfg.iterations - start))
        lr = cfg.lr * factor * self.lr_ramp()
        for opt in (self.opt_g, self.opt_d):
            set_lr(opt, lr)
        return lr

    def train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, float]:
        rt, w = self.runtime, self.config.loss_weights()
        real_a, real_b = (rt.prepare_input(t) for t in batch)
        n = real_a.shape[0]
        lr = self._set_lr()
        self.gens.train()
        self.discs.train()

        # 1. every generator pass of the step (shared by both updates)
        with rt.autocast():
            fake = self.gens_ddp(real_a, real_b)

        # 2. discriminators: real -> 1, translated -> 0 (patch and CAM logits)
        self.opt_d.zero_grad(set_to_none=True)
        with rt.autocast():
            out_a, out_b = self.discs_ddp(torch.cat([real_a, fake["b2a"].detach()]),
                                          torch.cat([real_b, fake["a2b"].detach()]))
        d_loss_a = w.adv * discriminator_adversarial_loss(*_split(out_a, n))
        d_loss_b = w.adv * discriminator_adversarial_loss(*_split(out_b, n))
        d_total = d_loss_a + d_loss_b
        self.scaler_d.scale(d_total).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()

        # 3. generators, judged by the updated (frozen) discriminators
        self.discs.requires_grad_(False)
        try:
            with rt.autocast():
                judged_a, judged_b = self.discs(fake["b2a"], fake["a2b"])
            adv_a = generator_adversarial_loss(judged_a)
            adv_b = generator_adversarial_loss(judged_b)
            cyc_a = F.l1_loss(fake["a2b2a"].float(), real_a.float())
            cyc_b = F.l1_loss(fake["b2a2b"].float(), real_b.float())
            idt_a = F.l1_loss(fake["a2a"].float(), real_a.float())
            idt_b = F.l1_loss(fake["b2b"].float(), real_b.float())
            cam_a = generator_cam_loss(fake["cam_b2a_src"], fake["cam_b2a_tgt"])
            cam_b = generator_cam_loss(fake["cam_a2b_src"], fake["cam_a2b_tgt"])
            g_loss_a = w.adv * adv_a + w.cycle * cyc_a + w.identity * idt_a + w.cam * cam_a
            g_loss_b = w.adv * adv_b + w.cycle * cyc_b + w.identity * idt_b + w.cam * cam_b
            g_total = g_loss_a + g_loss_b
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(g_total).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        finally:
            self.discs.requires_grad_(True)
        clip_rho(self.gens)

        values = dict(d_total=d_total, d_a=d_loss_a, d_b=d_loss_b, g_total=g_total,
                      g_adv_a=adv_a, g_adv_b=adv_b, g_cycle_a=cyc_a, g_cycle_b=cyc_b,
                      g_identity_a=idt_a, g_identity_b=idt_b, g_cam_a=cam_a, g_cam_b=cam_b)
        losses = {k: float(v.detach()) for k, v in values.items()}
        losses["lr"] = lr
        return losses

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"gens": self.gens.state_dict(), "discs": self.discs.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gens.load_state_dict(state["gens"])
        self.discs.load_state_dict(state["discs"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        use_fused(self.opt_g)
        use_fused(self.opt_d)
        if state.get("scaler_g"):
            self.scaler_g.load_state_dict(state["scaler_g"])
            self.scaler_d.load_state_dict(state["scaler_d"])

    # ---- evaluation ------------------------------------------------------------------------------
    def _val_batch(self, files: list[Path]) -> Tensor:
        return torch.stack([load_image_tensor(p, self.config.img_size) for p in files])

    @torch.no_grad()
    def translate(self, images: Tensor, direction: str = "a2b",
                  averaged: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """Run one generator in eval mode: ``images (B,3,S,S)`` [-1,1] -> (out, cam_logit, heatmap), fp32 CPU.

        ``averaged``: use the generator's weight average when ``ema_decay > 0`` (else the trained weights).
        """
        gen: nn.Module = self.gens.a2b if direction == "a2b" else self.gens.b2a
        if averaged:
            gen = self.averaged(gen)
        was_training = gen.training
        gen.eval()
        with self.runtime.autocast():
            out = gen(self.runtime.prepare_input(images))
        gen.train(was_training)
        return tuple(t.float().cpu().contiguous() for t in out)

    def sample_grid(self) -> np.ndarray:
        """Rows per validation image (A->B rows, then B->A), three CAM heat-maps as in the official
        samples: input | heat-map | translation | heat-map | cycle | heat-map | identity. Each
        heat-map is that pass's attention, overlaid on that pass's input."""
        self.require_data_dir()  # a ConfigError, not an AttributeError, without data
        k = self.config.n_samples
        rows = []
        for files, fwd, back in ((self.val_a or self.train_a, "a2b", "b2a"),
                                 (self.val_b or self.train_b, "b2a", "a2b")):
            x = self._val_batch(files[:k])
            out, _, heat = self.translate(x, fwd)
            cyc, _, heat_cyc = self.translate(out, back)
            idt, _, heat_idt = self.translate(x, back)
            for i in range(x.shape[0]):
                src, fake = tensor_to_uint8(x[i]), tensor_to_uint8(out[i])
                rows.append([src, heatmap_overlay(src, heat[i, 0]), fake,
                             heatmap_overlay(fake, heat_cyc[i, 0]), tensor_to_uint8(cyc[i]),
                             heatmap_overlay(src, heat_idt[i, 0]), tensor_to_uint8(idt[i])])
        return image_grid(rows)

    def validate(self) -> dict[str, float]:
        """KIDx100 between translated held-out selfies (A->B) and held-out anime faces (B).

        With a weight average (``ema_decay > 0``), ``kid_x100`` is the average's and
        ``kid_x100_live`` the trained weights'. ``{}`` (and one warning) when either domain has
        fewer than 2 held-out images.
        """
        self.require_data_dir()  # a ConfigError, not an AttributeError, without data
        cfg = self.config
        if cfg.kid_images <= 0:
            return {}
        files_a, files_b = self.val_a[:cfg.kid_images], self.val_b[:cfg.kid_images]
        if len(files_a) < 2 or len(files_b) < 2:
            if not self._kid_warned:
                log.warning("no validation KID: it needs at least 2 held-out images per domain, got %d selfie(s) "
                            "and %d anime face(s) (holdout = %d, or testA/testB)", len(files_a), len(files_b),
                            cfg.holdout)
                self._kid_warned = True
            return {}
        from ..metrics.features import extract_features
        from ..metrics.kid import validation_kid_x100

        if self._kid_reference is None:
            self._kid_reference = extract_features(files_b, backend=cfg.kid_backend)

        def kid_x100(averaged: bool) -> dict[str, float]:
            fakes = []
            for i in range(0, len(files_a), 16):
                out, _, _ = self.translate(self._val_batch(files_a[i:i + 16]), "a2b", averaged=averaged)
                fakes += [tensor_to_uint8(t) for t in out]
            return validation_kid_x100(extract_features(fakes, backend=cfg.kid_backend), self._kid_reference)

        stats = kid_x100(averaged=True)
        if self.ema is not None and self.ema.started:
            stats["kid_x100_live"] = kid_x100(averaged=False)["kid_x100"]
        return stats

    # ---- export --------------------------------------------------------------------------------
    def export(self, out_dir: str | os.PathLike[str], fp16: bool = False,
               discriminators: bool = False) -> Path:
        """Write the generators as config.json + model.safetensors folders.

        Inference export: ``a2b/`` and ``b2a/``, the weight averages when ``ema_decay > 0``.
        ``discriminators=True`` writes the training state ``init_from`` reads instead: ``a2b/``,
        ``b2a/`` (the trained weights), ``disc_*/`` and, with a weight average, ``ema_a2b/``, ``ema_b2a/``.
        """
        out = Path(out_dir)
        meta = {"step": self.step, "train_hours": round(self.train_seconds / 3600, 3),
                "trainer": "facetoon train ugatit", "config": self.trained_config()}
        dtype = torch.float16 if fp16 else None
        nets: dict[str, nn.Module] = {"a2b": self.gens.a2b, "b2a": self.gens.b2a}
        if discriminators:
            nets |= {f"disc_{name}": getattr(self.discs, name) for name in ("ga", "la", "gb", "lb")}
            if self.ema is not None and self.ema.started:
                nets |= {"ema_a2b": self.averaged(self.gens.a2b), "ema_b2a": self.averaged(self.gens.b2a)}
        else:
            nets = {name: self.averaged(net) for name, net in nets.items()}
        for name, net in nets.items():
            direction = {"a2b": "A->B", "b2a": "B->A"}.get(name.removeprefix("ema_"))
            extra = {"direction": direction} if direction else {}
            save_pretrained(net, out / name, dtype=dtype, meta={**meta, **extra, **self.weights_meta(net)})
        return out
