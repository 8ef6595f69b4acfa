"""Model architectures (U-GAT-IT, AnimeGAN, CartoonGAN), their registry and serialization."""

from .registry import create_model, get_model_class, list_models, register_model
from .serialization import load_pretrained, read_config, resolve_weights, save_pretrained

__all__ = [
    "create_model",
    "get_model_class",
    "list_models",
    "register_model",
    "load_pretrained",
    "read_config",
    "resolve_weights",
    "save_pretrained",
]
