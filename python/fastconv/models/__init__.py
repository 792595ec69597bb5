"""Models: functional ``Model``, ``Sequential``, ``load_model``."""

from .model import Functional, Model, Sequential
from .saving import load_model, model_from_config, save_model

__all__ = ["Model", "Sequential", "Functional", "load_model", "save_model", "model_from_config"]
