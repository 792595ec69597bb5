"""Models: the functional ``Model``, ``Sequential``, saving and loading."""

from .model import Functional, Model
from .saving import load_model, model_from_config, save_model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "Functional", "load_model", "save_model", "model_from_config"]
