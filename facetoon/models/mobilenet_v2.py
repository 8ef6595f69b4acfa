"""ImageNet MobileNetV2 (1.0, 224) in PyTorch, built from the tensors of the quantised TFLite model.

The only ImageNet-pretrained backbone available offline is the uint8-quantised TFLite classifier
``mobilenet_v2_1.0_224_quant.tflite`` (Apache-2.0). :meth:`MobileNetV2Features.from_tflite` reads
its tensors with ``ai-edge-litert``, dequantises them with our own code
(``real = scale * (q - zero_point)``) and loads them into a float PyTorch network:

* conv weights are stored OHWI in TFLite and become OIHW; depthwise weights are 1HWC and become
  (C, 1, H, W);
* batch norm is already folded into each conv (weights and an int32 bias);
* every conv but the linear bottleneck projections and the classifier is followed by ReLU6;
* strided convs use TensorFlow's 'SAME' padding, which is asymmetric (the extra row and column go
  at the bottom and right), so the port pads explicitly before each conv.

Input convention: RGB, NCHW, in the model's *real* input units ``(q - 128) / 128`` where ``q`` is
the uint8 pixel (the TFLite input is uint8 with scale 1/128 and zero point 128). Use
:meth:`MobileNetV2Features.normalize_uint8` for uint8-valued tensors (0..255) and
:meth:`MobileNetV2Features.normalize_pm1` for facetoon's RGB in [-1, 1]; the latter is
differentiable and is what a perceptual loss wants. Any input size works (the net is fully
convolutional up to the global average pool); the classifier was trained at 224 x 224.

Outputs: :meth:`forward` gives the pooled 1280-d features (the TFLite ``MobilenetV2/Logits/AvgPool``
tensor); :meth:`logits` the 1001 ImageNet logits (index 0 is "background", see
``imagenet_labels.txt``); :meth:`features` a dict of intermediate maps by layer name.

Layer names for :meth:`features` (strides for a 224 input)::

    stem            ReLU6 3x3/2 conv         32 ch   stride 2   (112 x 112)
    block0          bottleneck               16 ch   stride 2
    block1..2       bottlenecks              24 ch   stride 4   (56 x 56)
    block3..5       bottlenecks              32 ch   stride 8   (28 x 28)
    block6..9       bottlenecks              64 ch   stride 16  (14 x 14)
    block10..12     bottlenecks              96 ch   stride 16
    block13..15     bottlenecks             160 ch   stride 32  (7 x 7)
    block16         bottleneck              320 ch   stride 32
    head            ReLU6 1x1 conv         1280 ch   stride 32
    pool            global average            1280   (N, 1280)

``blockK`` is the block's output (linear bottleneck, after the residual add); ``blockK.expand``
and ``blockK.depthwise`` are its ReLU6 activations after the 1x1 expansion and after the 3x3
depthwise conv (blocks 1..16; block0 has no expansion). For a perceptual (content) loss the wide,
post-ReLU6 activations are the useful ones: ``block6.expand`` (192 ch, stride 8, the input of the
first stride-16 block) keeps spatial detail at the level of VGG's conv3/conv4, and
``block13.expand`` (576 ch, stride 16) is more semantic. The 24..96-channel bottleneck outputs are
thin linear projections and make poorer loss targets.

A faithful-quantisation mode (``simulate_quantization=True``) rounds every activation to the
uint8 grid of the TFLite model; with it the port reproduces the interpreter almost exactly,
which is how the tests check the layouts and the padding.

Speed: on CPU, ``model.to(memory_format=torch.channels_last)`` with channels-last inputs runs
about twice as fast at batch 8 and more (measured on 2 cores); the float port is nevertheless
several times slower than the int8 XNNPACK interpreter, which is why KID defaults to ``litert``.

The converted network can be cached as safetensors with :meth:`save` / :meth:`load`; the cache
path is the caller's choice (the shared TFLite file stays the source of truth).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, WeightsError

__all__ = [
    "MobileNetV2Features",
    "InvertedResidual",
    "default_tflite_path",
    "load_imagenet_labels",
    "BLOCK_SPEC",
    "PERCEPTUAL_LAYERS",
]

log = logging.getLogger(__name__)

TFLITE_NAME = "mobilenet_v2_1.0_224_quant.tflite"
LABELS_NAME = "imagenet_labels.txt"
FORMAT_TAG = "facetoon-mobilenet_v2_1.0_224"

# (expansion t, output channels c, stride s) of the 17 inverted-residual blocks of MobileNetV2 1.0
BLOCK_SPEC: tuple[tuple[int, int, int], ...] = (
    (1, 16, 1),
    (6, 24, 2), (6, 24, 1),
    (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
    (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1),
    (6, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1001

# layers recommended for a perceptual loss (see the module docstring)
PERCEPTUAL_LAYERS: tuple[str, ...] = ("block6.expand", "block13.expand")


def default_tflite_path() -> Path:
    """Where the TFLite model is looked for when no path is given.

    ``$FACETOON_MOBILENET_V2`` if set, else ``../shared/models/mobilenet_v2/`` beside the source
    checkout (the development layout). The file may not exist; loaders raise :class:`WeightsError`.
    """
    env = os.environ.get("FACETOON_MOBILENET_V2")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "models" / "mobilenet_v2" / TFLITE_NAME


def load_imagenet_labels(path: str | os.PathLike[str] | None = None) -> list[str]:
    """The 1001 class names (index 0 = "background"), from ``imagenet_labels.txt``.

    ``path`` defaults to the labels file beside :func:`default_tflite_path`.
    """
    file = Path(path) if path is not None else default_tflite_path().with_name(LABELS_NAME)
    try:
        labels = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise WeightsError(f"cannot read the ImageNet labels ({exc.strerror})", path=file) from None
    if len(labels) != NUM_CLASSES:
        raise WeightsError(f"expected {NUM_CLASSES} labels, found {len(labels)}", path=file)
    return labels


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad ``x`` (N, C, H, W) as TensorFlow's 'SAME' does: extra row/column at bottom/right."""
    if kernel == 1:
        return x
    pads: list[int] = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: W first, then H
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _fake_quant(x: torch.Tensor, qparams: tuple[float, int] | None) -> torch.Tensor:
    """Round a real-valued tensor to the uint8 grid ``scale * (q - zero_point)``, q in 0..255."""
    if qparams is None:
        return x
    scale, zero = qparams
    q = torch.clamp(torch.round(x / scale) + zero, 0, 255)
    return (q - zero) * scale


class ConvAct(nn.Module):
    """Conv2d with TF 'SAME' padding, folded-BN bias and optional ReLU6.

    ``groups == in_channels`` makes it a depthwise conv (multiplier 1).
    """

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 relu6: bool = True) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu6 = kernel, stride, relu6
        # stride 1 with an odd kernel: 'SAME' is symmetric and the conv pads itself (cheaper)
        self.explicit_pad = stride > 1
        padding = 0 if self.explicit_pad else kernel // 2
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=True)
        self.qparams: tuple[float, int] | None = None  # output grid in simulate-quantization mode

    def forward(self, x: torch.Tensor, simulate: bool = False) -> torch.Tensor:
        x = self.conv(_same_pad(x, self.kernel, self.stride) if self.explicit_pad else x)
        if self.relu6:
            x = F.relu6(x, inplace=True)  # the conv output is not needed by autograd
        return _fake_quant(x, self.qparams) if simulate else x


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand, ReLU6] -> 3x3 depthwise (stride), ReLU6 -> 1x1 linear project
    (+ input when stride 1 and channels match).
    """

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.expand = ConvAct(cin, hidden) if expansion != 1 else None
        self.depthwise = ConvAct(hidden, hidden, 3, stride, groups=hidden)
        self.project = ConvAct(hidden, cout, relu6=False)
        self.residual = stride == 1 and cin == cout
        self.add_qparams: tuple[float, int] | None = None

    def forward(self, x: torch.Tensor, simulate: bool = False,
                taps: dict[str, torch.Tensor] | None = None, prefix: str = "") -> torch.Tensor:
        y = x
        if self.expand is not None:
            y = self.expand(y, simulate)
            if taps is not None:
                taps[f"{prefix}.expand"] = y
        y = self.depthwise(y, simulate)
        if taps is not None:
            taps[f"{prefix}.depthwise"] = y
        y = self.project(y, simulate)
        if self.residual:
            y = y + x
            if simulate:
                y = _fake_quant(y, self.add_qparams)
        return y


class MobileNetV2Features(nn.Module):
    """ImageNet MobileNetV2 1.0 as a feature extractor (float, eval mode, frozen parameters).

    Input ``x``: (N, 3, H, W) float RGB in the model's units ``(q - 128) / 128`` (see
    :meth:`normalize_uint8`, :meth:`normalize_pm1`). ``forward(x)`` -> (N, 1280) pooled features.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvAct(3, STEM_CHANNELS, 3, 2)
        blocks = []
        cin = STEM_CHANNELS
        for t, c, s in BLOCK_SPEC:
            blocks.append(InvertedResidual(cin, c, s, t))
            cin = c
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvAct(cin, HEAD_CHANNELS)
        self.classifier = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)
        self.simulate_quantization = False
        # quantisation of the input, the pooled features and the logits (set by from_tflite)
        self.input_qparams: tuple[float, int] = (1.0 / 128.0, 128)
        self.pool_qparams: tuple[float, int] | None = None
        self.logits_qparams: tuple[float, int] | None = None
        self.source: dict[str, Any] = {}
        self.requires_grad_(False)  # a fixed, pretrained feature network
        self.eval()

    # ---------------------------------------------------------------- input conventions
    def normalize_uint8(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB with values 0..255 (any dtype) -> model input ``(x - 128) / 128``."""
        scale, zero = self.input_qparams
        return (x.to(torch.float32) - zero) * scale

    def normalize_pm1(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [-1, 1] (facetoon's convention) -> model input; differentiable.

        [-1, 1] maps to 0..255 as ``(x + 1) * 127.5``, then :meth:`normalize_uint8` (no rounding).
        """
        return self.normalize_uint8((x + 1.0) * 127.5)

    # ---------------------------------------------------------------- network
    def _run(self, x: torch.Tensor, wanted: set[str] | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        _check_input(x)
        sim = self.simulate_quantization
        if sim:
            x = _fake_quant(x, self.input_qparams)
        taps: dict[str, torch.Tensor] = {}
        x = self.stem(x, sim)
        taps["stem"] = x
        for i, block in enumerate(self.blocks):
            if wanted is not None and wanted <= taps.keys():
                return x, taps
            x = block(x, sim, taps, f"block{i}")
            taps[f"block{i}"] = x
        if wanted is not None and wanted <= taps.keys():
            return x, taps
        x = self.head(x, sim)
        taps["head"] = x
        pooled = x.mean(dim=(2, 3))
        if sim:
            pooled = _fake_quant(pooled, self.pool_qparams)
        taps["pool"] = pooled
        return pooled, taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) model-unit RGB -> (N, 1280) pooled features (ReLU6 range [0, 6])."""
        return self._run(x, {"pool"})[0]

    def features(self, x: torch.Tensor, layers: Iterable[str] = PERCEPTUAL_LAYERS) -> dict[str, torch.Tensor]:
        """Intermediate maps by name (see the module docstring), e.g. ``{"block6.expand": (N,192,H/8,W/8)}``.

        Stops the forward pass as soon as every requested layer is computed.
        """
        wanted = set(layers)
        known = self.layer_names()
        unknown = sorted(wanted - set(known))
        if unknown:
            raise ConfigError(f"unknown MobileNetV2 layer(s) {unknown}; known: {', '.join(known)}")
        _, taps = self._run(x, wanted)
        return {name: taps[name] for name in layers}

    intermediate = features

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) model-unit RGB -> (N, 1001) ImageNet logits (index 0 = background)."""
        out = self.classifier(self.forward(x))
        if self.simulate_quantization:
            out = _fake_quant(out, self.logits_qparams)
        return out

    def layer_names(self) -> list[str]:
        """Names accepted by :meth:`features`, in forward order."""
        names = ["stem"]
        for i, block in enumerate(self.blocks):
            if block.expand is not None:
                names.append(f"block{i}.expand")
            names += [f"block{i}.depthwise", f"block{i}"]
        return names + ["head", "pool"]

    # ---------------------------------------------------------------- conversion and caching
    @classmethod
    def from_tflite(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        cache: str | os.PathLike[str] | None = None,
    ) -> MobileNetV2Features:
        """Build the network from the quantised TFLite file (default :func:`default_tflite_path`).

        With ``cache`` (a ``.safetensors`` path chosen by the caller) the converted network is
        loaded from there when it was made from the same TFLite file (same sha256), and written
        there otherwise. Raises :class:`WeightsError` when the file is missing or not this model.
        """
        src = Path(path) if path is not None else default_tflite_path()
        if not src.is_file():
            raise WeightsError(
                "MobileNetV2 TFLite model not found (pass its path or set FACETOON_MOBILENET_V2)", path=src
            )
        digest = _sha256(src)
        if cache is not None and Path(cache).is_file():
            try:
                model = cls.load(cache)
            except WeightsError as exc:
                log.warning("ignoring unreadable MobileNetV2 cache: %s", exc)
            else:
                if model.source.get("sha256") == digest:
                    return model
                log.info("MobileNetV2 cache %s was made from another file; rebuilding", cache)
        model = cls()
        _load_tflite_into(model, src)
        model.source = {"file": src.name, "sha256": digest}
        if cache is not None:
            model.save(cache)
        return model.eval()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the weights and quantisation grids as one safetensors file (atomically)."""
        from safetensors.torch import save

        meta = {
            "format": FORMAT_TAG,
            "source": json.dumps(self.source),
            "qparams": json.dumps(self._qparams_dict()),
        }
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(save(state, metadata=meta))
        os.replace(tmp, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MobileNetV2Features:
        """Read a network written by :meth:`save`; :class:`WeightsError` if it is not one."""
        from safetensors import SafetensorError, safe_open

        file = Path(path)
        try:
            with safe_open(str(file), framework="pt") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError) as exc:
            raise WeightsError(f"cannot read safetensors file ({exc})", path=file) from None
        if meta.get("format") != FORMAT_TAG:
            raise WeightsError(f"not a facetoon MobileNetV2 file (format {meta.get('format')!r})", path=file)
        model = cls()
        expected = model.state_dict()
        if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in state):
            raise WeightsError("tensors do not match the MobileNetV2 architecture", path=file)
        model.load_state_dict(state)
        model._set_qparams(json.loads(meta["qparams"]))
        model.source = json.loads(meta.get("source", "{}"))
        return model.eval()

    def _convs(self) -> dict[str, ConvAct]:
        convs = {"stem": self.stem, "head": self.head}
        for i, block in enumerate(self.blocks):
            for part in ("expand", "depthwise", "project"):
                layer = getattr(block, part)
                if layer is not None:
                    convs[f"block{i}.{part}"] = layer
        return convs

    def _qparams_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {name: conv.qparams for name, conv in self._convs().items()}
        d.update({f"block{i}.add": b.add_qparams for i, b in enumerate(self.blocks) if b.residual})
        d.update(input=self.input_qparams, pool=self.pool_qparams, logits=self.logits_qparams)
        return d

    def _set_qparams(self, d: dict[str, Any]) -> None:
        def tup(v: Any) -> tuple[float, int] | None:
            return None if v is None else (float(v[0]), int(v[1]))

        for name, conv in self._convs().items():
            conv.qparams = tup(d.get(name))
        for i, block in enumerate(cast("Iterable[InvertedResidual]", self.blocks)):
            if block.residual:
                block.add_qparams = tup(d.get(f"block{i}.add"))
        self.input_qparams = tup(d["input"]) or self.input_qparams
        self.pool_qparams = tup(d.get("pool"))
        self.logits_qparams = tup(d.get("logits"))


def _check_input(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"MobileNetV2 expects an (N, 3, H, W) RGB tensor, got {shape}")
    if x.shape[2] < 32 or x.shape[3] < 32:
        raise ValueError(f"MobileNetV2 needs images of at least 32 x 32 pixels, got {tuple(x.shape[2:])}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------- TFLite reading
# layer scope in the TFLite names -> our layer name
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^MobilenetV2/Conv$"), "stem"),
    (re.compile(r"^MobilenetV2/Conv_1$"), "head"),
    (re.compile(r"^MobilenetV2/Logits/Conv2d_1c_1x1$"), "classifier"),
    (re.compile(r"^MobilenetV2/expanded_conv/(depthwise|project)$"), r"block0.\1"),
    (re.compile(r"^MobilenetV2/expanded_conv_(\d+)/(expand|depthwise|project)$"), r"block\1.\2"),
)
_BLOCK_OUT = re.compile(r"^MobilenetV2/expanded_conv(?:_(\d+))?/add$")


def _layer_of(weight_name: str, path: Path | None = None) -> str:
    """Our layer name for a TFLite conv weight tensor name (first ';' part, minus the op suffix)."""
    scope = weight_name.split(";")[0].rsplit("/", 1)[0]
    for pattern, repl in _RULES:
        if pattern.match(scope):
            return pattern.sub(repl, scope)
    raise WeightsError(f"unexpected TFLite weight tensor {weight_name.split(';')[0]!r}", path=path)


def _dequantize(detail: dict[str, Any], data: np.ndarray) -> np.ndarray:
    """``scale * (q - zero_point)`` as float32, per tensor or per channel (``quantized_dimension``)."""
    qp = detail["quantization_parameters"]
    scales = np.asarray(qp["scales"], dtype=np.float64)
    zeros = np.asarray(qp["zero_points"], dtype=np.float64)
    values = data.astype(np.float64)
    if scales.size == 0:  # a float tensor
        return values.astype(np.float32)
    if scales.size > 1:
        shape = [1] * values.ndim
        shape[int(qp["quantized_dimension"])] = scales.size
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    return ((values - zeros) * scales).astype(np.float32)


def _qparams(detail: dict[str, Any]) -> tuple[float, int]:
    scale, zero = detail["quantization"]
    return float(scale), int(zero)


def _load_tflite_into(model: MobileNetV2Features, path: Path) -> None:
    """Copy the dequantised conv tensors of ``path`` into ``model``; loud on any mismatch."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - a declared dependency
        raise WeightsError("reading TFLite models needs the 'ai-edge-litert' package") from None
    try:
        interp = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as exc:
        raise WeightsError(f"not a readable TFLite model ({str(exc).splitlines()[0]})", path=path) from None
    details = {d["index"]: d for d in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # noqa: SLF001 - the graph structure; no public accessor
    convs = model._convs()
    done: set[str] = set()
    for op in ops:
        name = op["op_name"]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            act, w_idx, b_idx = (int(i) for i in op["inputs"])
            out_idx = int(op["outputs"][0])
            layer = _layer_of(details[w_idx]["name"], path)
            weight = _dequantize(details[w_idx], interp.get_tensor(w_idx))
            bias = _dequantize(details[b_idx], interp.get_tensor(b_idx))
            if name == "DEPTHWISE_CONV_2D":  # 1HWC -> C1HW
                weight = weight[0].transpose(2, 0, 1)[:, None]
            else:  # OHWI -> OIHW
                weight = weight.transpose(0, 3, 1, 2)
            target_w: torch.Tensor
            target_b: torch.Tensor
            if layer == "classifier":
                target_w, target_b = model.classifier.weight, model.classifier.bias
                weight = weight.reshape(weight.shape[0], -1)
                model.logits_qparams = _qparams(details[out_idx])
            else:
                if layer not in convs:
                    raise WeightsError(f"TFLite layer {layer} has no counterpart in the port", path=path)
                conv = convs[layer].conv
                assert conv.bias is not None  # ConvAct convs are built with bias=True
                target_w, target_b = conv.weight, conv.bias
                convs[layer].qparams = _qparams(details[out_idx])
            if tuple(target_w.shape) != weight.shape or tuple(target_b.shape) != bias.shape:
                raise WeightsError(
                    f"{layer}: TFLite weight {weight.shape} / bias {bias.shape} do not fit "
                    f"{tuple(target_w.shape)} / {tuple(target_b.shape)}", path=path)
            with torch.no_grad():
                target_w.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
                target_b.copy_(torch.from_numpy(bias))
            if layer in done:
                raise WeightsError(f"TFLite layer {layer} appears twice", path=path)
            done.add(layer)
        elif name == "ADD":
            out = details[int(op["outputs"][0])]
            m = _BLOCK_OUT.match(out["name"].split(";")[0])
            if m is None:
                raise WeightsError(f"unexpected TFLite ADD output {out['name']!r}", path=path)
            block = cast(InvertedResidual, model.blocks[int(m.group(1) or 0)])
            if not block.residual:
                raise WeightsError(f"TFLite adds a residual in block {m.group(1)}, the port does not",
                                   path=path)
            block.add_qparams = _qparams(out)
        elif name == "AVERAGE_POOL_2D":
            model.pool_qparams = _qparams(details[int(op["outputs"][0])])
    expected = set(convs) | {"classifier"}
    if done != expected:
        raise WeightsError(f"TFLite model lacks layers {sorted(expected - done)}", path=path)
    model.input_qparams = _qparams(interp.get_input_details()[0])
    n_res = sum(b.residual for b in cast("Iterable[InvertedResidual]", model.blocks))
    if sum(b.add_qparams is not None for b in model.blocks) != n_res:
        raise WeightsError("TFLite model has a different number of residual adds", path=path)
    log.debug("converted %s: %d conv layers, %d residual adds", path.name, len(done), n_res)
