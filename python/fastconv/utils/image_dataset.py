"""``image_dataset_from_directory``: Keras' folder-of-images reader, on Pillow and threads.

Files are indexed, shuffled and split exactly as Keras does it (class sub-folders in
alphanumeric order; file list shuffled with ``np.random.RandomState(seed)``; the validation
subset is the last ``int(validation_split * n)`` files). Decoding and resizing run in a pool of
worker threads (Pillow releases the GIL while it decodes and resamples) and the next batches are
prefetched while the current one is being consumed, so reading overlaps training.
"""

from __future__ import annotations

import copy
import math
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fastconv import distribution
from fastconv._random import make_rng
from fastconv.ops.core import EagerTensor, eager

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

_COLOR_MODES = {"rgb": ("RGB", 3), "grayscale": ("L", 1), "rgba": ("RGBA", 4)}
_LABEL_MODES = ("int", "binary", "categorical", None)

#: Decode large JPEGs at a reduced DCT scale (``Image.draft``) when the reduced image is still
#: at least as large as the target: 2-4x faster decoding, a result within a couple of grey
#: levels of the full decode (see bench/bench_input_pipeline.py). Set False to decode fully.
USE_JPEG_DRAFT = True
#: Batches decoded ahead of the one being consumed.
PREFETCH_BATCHES = 4


class ImageReadError(ValueError):
    """An image file of a dataset could not be decoded (the message names the file)."""


def _resample_filter(interpolation):
    from PIL import Image

    filters = {
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
        "bicubic": Image.Resampling.BICUBIC,
        "area": Image.Resampling.BOX,
        "lanczos3": Image.Resampling.LANCZOS,
        "lanczos5": Image.Resampling.LANCZOS,
    }
    if interpolation not in filters:
        raise ValueError(
            f"`interpolation` must be one of {sorted(filters)}, received: {interpolation!r}"
        )
    return filters[interpolation]


def _index_directory(directory, labels, formats, class_names, follow_links):
    """Return (file_paths, labels or None, class_names), in Keras' order."""
    if labels == "inferred":
        subdirs = sorted(
            d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d))
        )
        if class_names is not None:
            if sorted(class_names) != subdirs:
                raise ValueError(
                    "The `class_names` passed did not match the names of the subdirectories "
                    f"of the target directory. Expected: {subdirs} (or a permutation of it), "
                    f"but received: class_names={list(class_names)}"
                )
            subdirs = list(class_names)
        class_names = subdirs
    else:
        subdirs = [""]
    file_paths, file_labels = [], []
    for label, sub in enumerate(subdirs):
        root = os.path.join(directory, sub) if sub else directory
        found = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_links):
            dirnames.sort()
            for fname in sorted(filenames):
                if fname.lower().endswith(formats):
                    found.append(os.path.join(dirpath, fname))
        found.sort()
        file_paths.extend(found)
        file_labels.extend([label] * len(found))
    if labels == "inferred":
        return file_paths, np.asarray(file_labels, dtype=np.int64), class_names
    if labels is None:
        return file_paths, None, None
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(file_paths):
        raise ValueError(
            "Expected the lengths of `labels` to match the number of files in the target "
            f"directory. len(labels) is {len(labels)} while we found {len(file_paths)} files "
            f"in directory {directory}."
        )
    if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
        raise ValueError("`labels` must be a list of non-negative integers")
    return file_paths, labels.astype(np.int64), None


class ImageDataset:
    """Batches of ``(images, labels)`` (or images alone when ``label_mode=None``) read from files.

    ``images`` is float32 ``(batch, height, width, channels)`` in 0..255. ``len(ds)`` is the
    number of batches per epoch; each ``iter(ds)`` is one epoch, reshuffled when ``shuffle``.
    Batches are NumPy arrays that also answer TensorFlow's ``.numpy()`` (``EagerTensor``).
    ``take(n)``, ``skip(n)``, ``cardinality()`` and ``as_numpy_iterator()`` work as on a
    ``tf.data.Dataset``: ``for images, labels in ds.take(1)`` reads one batch.
    """

    def __init__(
        self,
        file_paths,
        labels,
        class_names,
        *,
        label_mode,
        num_classes,
        color_mode,
        batch_size,
        image_size,
        shuffle,
        seed,
        interpolation,
        crop_to_aspect_ratio,
        num_workers=None,
    ):
        self.file_paths = list(file_paths)
        self.class_names = class_names
        self.labels = labels
        self.label_mode = label_mode
        self.num_classes = num_classes
        self.color_mode = color_mode
        self.batch_size = batch_size
        self.image_size = tuple(image_size)
        self.shuffle = shuffle
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.num_workers = num_workers or max(2, os.cpu_count() or 1)
        self._pil_mode, self._channels = _COLOR_MODES[color_mode]
        self._resample = _resample_filter(interpolation)
        self._rng = make_rng(seed)  # seed None: drawn from fastconv's global (seedable) generator
        self._targets = self._encode_labels()
        self._window = (0, None)  # the batches of an epoch kept by take/skip: [start, stop)

    def _encode_labels(self):
        if self.label_mode is None or self.labels is None:
            return None
        if self.label_mode == "int":
            return self.labels.astype(np.int32)
        if self.label_mode == "binary":
            return self.labels.astype(np.float32).reshape(-1, 1)
        eye = np.eye(self.num_classes, dtype=np.float32)
        return eye[self.labels]

    @property
    def element_shape(self):
        h, w = self.image_size
        return (h, w, self._channels)

    def __len__(self):
        n = len(self.file_paths)
        batches = n if self.batch_size is None else math.ceil(n / self.batch_size)
        return len(range(batches)[slice(*self._window)])

    # -- tf.data's listing idioms -------------------------------------------------------------
    def _with_window(self, start, stop):
        ds = copy.copy(self)  # shares the files, labels and shuffling generator
        ds._window = (start, stop)
        return ds

    def take(self, count: int) -> ImageDataset:
        """The first ``count`` batches of each epoch (all of them for ``count=-1``), as
        ``tf.data.Dataset.take``; a shuffled dataset still reshuffles every epoch."""
        count = _count_argument("take", count)
        start, stop = self._window
        if count < 0:
            return self._with_window(start, stop)
        end = start + count
        return self._with_window(start, end if stop is None else min(stop, end))

    def skip(self, count: int) -> ImageDataset:
        """Each epoch without its first ``count`` batches (``count=-1``: without any), as
        ``tf.data.Dataset.skip``."""
        count = _count_argument("skip", count)
        start, stop = self._window
        if count < 0:
            return self._with_window(start, start)
        begin = start + count
        return self._with_window(begin if stop is None else min(stop, begin), stop)

    def cardinality(self) -> EagerTensor:
        """The number of batches per epoch, as ``tf.data.Dataset.cardinality`` (a 0-d int64
        array: ``int(ds.cardinality())`` and ``ds.cardinality().numpy()`` both work)."""
        return eager(np.array(len(self), dtype=np.int64))

    def as_numpy_iterator(self):
        """One epoch of batches as plain NumPy arrays, as ``tf.data.Dataset.as_numpy_iterator``."""
        for batch in self:
            if isinstance(batch, tuple):
                yield tuple(part.view(np.ndarray) for part in batch)
            else:
                yield batch.view(np.ndarray)

    def __repr__(self):
        return (
            f"<ImageDataset: {len(self.file_paths)} files, {len(self)} batches of "
            f"{self.batch_size}, images {self.element_shape}, label_mode={self.label_mode!r}>"
        )

    # -- decoding ---------------------------------------------------------------------------
    def load_image(self, path):
        """Decode one file to a uint8 array (h, w, channels); errors name the file."""
        from PIL import Image

        h, w = self.image_size
        try:
            with Image.open(path) as img:
                if USE_JPEG_DRAFT and img.format == "JPEG":
                    # Reduced-scale decode, keeping the (cropped) region >= the target size.
                    fw, fh = img.size
                    cw, ch = self._crop_size(fw, fh)
                    req = (math.ceil(w * fw / cw), math.ceil(h * fh / ch))
                    img.draft("L" if self._pil_mode == "L" else "RGB", req)
                if img.mode != self._pil_mode:
                    img = img.convert(self._pil_mode)
                if self.crop_to_aspect_ratio:
                    # crop, then resize (as Keras): no filter tap reaches outside the crop
                    box = self._crop_box(*img.size)
                    if box != (0, 0) + img.size:
                        img = img.crop(box)
                if img.size != (w, h):
                    img = img.resize((w, h), self._resample)
                arr = np.asarray(img)
        except Exception as e:  # noqa: BLE001 - any failure is reported with the file name
            raise ImageReadError(
                f"Could not read image file {path}: {type(e).__name__}: {e}"
            ) from e
        return arr.reshape(h, w, self._channels)

    def _crop_size(self, width, height):
        if not self.crop_to_aspect_ratio:
            return width, height
        th, tw = self.image_size
        crop_h = min(height, int(float(width * th) / tw))
        crop_w = min(width, int(float(height * tw) / th))
        return max(crop_w, 1), max(crop_h, 1)

    def _crop_box(self, width, height):
        cw, ch = self._crop_size(width, height)
        top = int(float(height - ch) / 2)
        left = int(float(width - cw) / 2)
        return (left, top, left + cw, top + ch)

    # -- iteration --------------------------------------------------------------------------
    def _epoch_order(self):
        n = len(self.file_paths)
        return self._rng.permutation(n) if self.shuffle else np.arange(n)

    def _epoch_batches(self):
        order = self._epoch_order()
        bs = self.batch_size or 1
        return [order[i : i + bs] for i in range(0, len(order), bs)][slice(*self._window)]

    def __iter__(self):
        return self._generate(self._epoch_batches())

    def iter_shard(self, index, count):
        """One epoch of part ``index`` of ``count`` of every batch (data-parallel training): the
        batches of ``iter(self)`` (same order for the same seed), each cut into ``count``
        contiguous near-equal parts (maybe empty); only part ``index`` is decoded."""
        if self.batch_size is None:
            raise ValueError("Sharding needs batches: use a `batch_size`, not None")
        bounds = distribution.shard_bounds
        return self._generate(
            [b[slice(*bounds(len(b), index, count))] for b in self._epoch_batches()]
        )

    def _submit(self, pool, idx):
        out = np.empty((len(idx),) + self.element_shape, np.float32)

        def load_into(j, i):
            out[j] = self.load_image(self.file_paths[i])

        futures = [pool.submit(load_into, j, i) for j, i in enumerate(idx)]
        return idx, out, futures

    def _generate(self, batches):
        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="fastconv-images")
        pending = deque()
        try:
            nxt = 0
            for _ in range(len(batches)):
                while nxt < len(batches) and len(pending) < PREFETCH_BATCHES:
                    pending.append(self._submit(pool, batches[nxt]))
                    nxt += 1
                idx, out, futures = pending.popleft()
                for f in futures:
                    f.result()  # re-raises the worker's error, which names the file
                if self.batch_size is None:
                    out = out[0]
                    targets = None if self._targets is None else self._targets[idx[0]]
                else:
                    targets = None if self._targets is None else self._targets[idx]
                out = eager(out)  # answers `.numpy()`; the trainer reads it as a plain view
                yield out if targets is None else (out, eager(np.asarray(targets)))
        finally:
            for _, _, futures in pending:
                for f in futures:
                    f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def _count_argument(method, count):
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"{method}(count) takes an int; received {count!r}")
    return int(count)


def _check_arguments(
    directory, labels, label_mode, class_names, color_mode, image_size, batch_size, interpolation
):
    """Keras' argument errors, before any file is listed; returns the folder as a str."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"`directory` {directory!r} is not an existing directory")
    if labels not in ("inferred", None) and not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError(
            "`labels` argument should be a list/tuple of integer labels, of the same size as "
            "the number of image files in the target directory. If you wish to infer the "
            "labels from the subdirectory names in the target directory, pass "
            f'`labels="inferred"`. If you wish to get a dataset that only contains images '
            f"(no labels), pass `labels=None`. Received: labels={labels!r}"
        )
    if class_names is not None and labels != "inferred":
        raise ValueError(
            "You can only pass `class_names` if `labels='inferred'`. "
            f"Received: labels={labels!r}, and class_names={class_names!r}"
        )
    if label_mode not in _LABEL_MODES:
        raise ValueError(
            '`label_mode` argument must be one of "int", "categorical", "binary", or None. '
            f"Received: label_mode={label_mode!r}"
        )
    if color_mode not in _COLOR_MODES:
        raise ValueError(
            '`color_mode` must be one of {"rgb", "rgba", "grayscale"}. '
            f"Received: color_mode={color_mode!r}"
        )
    _resample_filter(interpolation)
    if len(tuple(image_size)) != 2 or not all(
        isinstance(s, (int, np.integer)) and s > 0 for s in image_size
    ):
        raise ValueError(f"`image_size` must be (height, width) positive ints, got {image_size!r}")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive int or None, got {batch_size!r}")
    return directory


def _check_split(validation_split, subset, shuffle, seed):
    if validation_split is not None:
        if not 0 < validation_split < 1:
            raise ValueError(
                f"`validation_split` must be between 0 and 1, received: {validation_split}"
            )
        if subset not in ("training", "validation", "both"):
            raise ValueError(
                "If `validation_split` is set, `subset` must be one of "
                f'"training", "validation" or "both". Received: subset={subset!r}'
            )
        if shuffle and seed is None:
            raise ValueError(
                "If using `validation_split` and shuffling the data, you must provide a `seed` "
                "argument, to make sure that there is no overlap between the training and "
                "validation subset."
            )
    elif subset is not None:
        raise ValueError("`subset` is only valid if `validation_split` is set.")


def _num_classes(labels, label_mode, class_names, file_labels):
    if label_mode == "binary" and labels == "inferred" and len(class_names) != 2:
        raise ValueError(
            'When passing `label_mode="binary"`, there must be exactly 2 class_names. '
            f"Received: class_names={class_names}"
        )
    if file_labels is not None and labels == "inferred":
        num_classes = len(class_names)
    elif file_labels is not None:
        num_classes = int(file_labels.max()) + 1
        if label_mode == "binary" and num_classes > 2:
            raise ValueError('label_mode="binary" needs labels 0 and 1 only')
    else:
        num_classes = 0
    return num_classes


def _shuffle_files(file_paths, file_labels, seed):
    """Keras: paths and labels shuffled with the same seed (before the split); the seed used."""
    if seed is None:
        # data-parallel: rank 0's seed on every process, so they all share the order
        seed = distribution.shared_seed(np.random.randint(1_000_000))
    rng = np.random.RandomState(seed)
    rng.shuffle(file_paths)
    if file_labels is not None:
        rng = np.random.RandomState(seed)
        rng.shuffle(file_labels)
    return seed


def _list_files(directory, labels, label_mode, class_names, follow_links, verbose):
    """(file paths, their labels or None, class names, number of classes) of the folder."""
    file_paths, file_labels, class_names = _index_directory(
        directory, labels, ALLOWLIST_FORMATS, class_names, follow_links
    )
    if labels == "inferred" and not class_names:
        raise ValueError(
            f"No class sub-folders found in directory {directory}: with labels='inferred', "
            "put the images of each class in a sub-folder named after the class."
        )
    if not file_paths:
        raise ValueError(
            f"No images found in directory {directory}. "
            f"Allowed formats: {', '.join(ALLOWLIST_FORMATS)}"
        )
    num_classes = _num_classes(labels, label_mode, class_names, file_labels)
    if verbose:
        if file_labels is not None and labels == "inferred":
            print(f"Found {len(file_paths)} files belonging to {num_classes} classes.")
        else:
            print(f"Found {len(file_paths)} files.")

    return file_paths, file_labels, class_names, num_classes


def _split_files(file_paths, file_labels, validation_split, subset, verbose):
    """{"training": (paths, labels), "validation": (paths, labels)}: the tail is validation."""
    num_val = int(validation_split * len(file_paths))
    split = len(file_paths) - num_val
    parts = {
        "training": (file_paths[:split], None if file_labels is None else file_labels[:split]),
        "validation": (file_paths[split:], None if file_labels is None else file_labels[split:]),
    }
    for name in ("training", "validation"):
        if not parts[name][0]:
            raise ValueError(
                f"validation_split={validation_split} leaves no files for the {name} subset "
                f"of {len(file_paths)} files"
            )
    if verbose:
        if subset in ("training", "both"):
            print(f"Using {split} files for training.")
        if subset in ("validation", "both"):
            print(f"Using {num_val} files for validation.")
    return parts


def image_dataset_from_directory(
    directory: str | os.PathLike,
    labels: str | Sequence[int] | None = "inferred",
    label_mode: str | None = "int",
    class_names: Sequence[str] | None = None,
    color_mode: str = "rgb",
    batch_size: int | None = 32,
    image_size: tuple[int, int] = (256, 256),
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    interpolation: str = "bilinear",
    follow_links: bool = False,
    crop_to_aspect_ratio: bool = False,
    verbose: bool = True,
) -> ImageDataset | tuple[ImageDataset, ImageDataset]:
    """Read a folder of images as Keras' ``image_dataset_from_directory`` does.

    With ``labels="inferred"``, ``directory`` holds one sub-folder per class (labels follow the
    alphanumeric order of the folder names, or the order of ``class_names``); files ending in
    jpg, jpeg, png, bmp or gif are read (animated GIFs: first frame). ``label_mode``: "int"
    (int32 ``(batch,)``), "binary" (float32 ``(batch, 1)``, two classes), "categorical" (float32
    one-hot) or None (images only). ``validation_split`` with ``subset="training"``,
    ``"validation"`` or ``"both"`` (returns a pair) splits deterministically for a ``seed``.
    ``batch_size=None`` yields single samples. Returns an :class:`ImageDataset`.
    """
    directory = _check_arguments(
        directory,
        labels,
        label_mode,
        class_names,
        color_mode,
        image_size,
        batch_size,
        interpolation,
    )
    _check_split(validation_split, subset, shuffle, seed)
    if labels is None:
        label_mode = None
    file_paths, file_labels, class_names, num_classes = _list_files(
        directory, labels, label_mode, class_names, follow_links, verbose
    )
    if shuffle:
        seed = _shuffle_files(file_paths, file_labels, seed)

    def make(paths, labs, epoch_seed):
        return ImageDataset(
            paths,
            labs,
            class_names,
            label_mode=label_mode,
            num_classes=num_classes,
            color_mode=color_mode,
            batch_size=batch_size,
            image_size=image_size,
            shuffle=shuffle,
            seed=epoch_seed,
            interpolation=interpolation,
            crop_to_aspect_ratio=crop_to_aspect_ratio,
        )

    if validation_split is None:
        return make(file_paths, file_labels, seed)
    parts = _split_files(file_paths, file_labels, validation_split, subset, verbose)
    val_seed = None if seed is None else seed + 1
    if subset == "both":
        return make(*parts["training"], seed), make(*parts["validation"], val_seed)
    return make(*parts[subset], seed if subset == "training" else val_seed)
