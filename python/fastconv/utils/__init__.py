"""Utilities shaped like ``keras.utils``: image folders, random seeds, training curves."""

from fastconv._random import set_random_seed

from .downloads import get_file
from .image_dataset import ImageDataset, image_dataset_from_directory
from .image_utils import array_to_img, img_to_array, load_img, to_categorical
from .plotting import plot_history

__all__ = [
    "ImageDataset",
    "image_dataset_from_directory",
    "plot_history",
    "set_random_seed",
    "get_file",
    "to_categorical",
    "load_img",
    "img_to_array",
    "array_to_img",
]
