"""Utilities shaped like ``keras.utils``: image folders, random seeds, training curves."""

from fastconv._random import set_random_seed

from .image_dataset import ImageDataset, image_dataset_from_directory
from .plotting import plot_history

__all__ = ["ImageDataset", "image_dataset_from_directory", "plot_history", "set_random_seed"]
