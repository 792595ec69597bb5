"""The ``fastconv`` command (also ``python -m fastconv``).

fastconv info
fastconv make-subset ORIGINAL_DIR NEW_BASE_DIR [--train N --validation N --test N]
fastconv train mnist [--dataset digits|mnist|fashion_mnist] [--epochs 5] [--batch-size 64]
                     [--threads N] [--save PATH] [--seed S] [--distributed] [--winograd]
fastconv train cats-vs-dogs DATA_DIR [--epochs 30] [--batch-size 32] [--augment]
                     [--save best.keras] [--plot curves.png] [--threads N] [--seed S]
                     [--distributed] [--winograd]
fastconv show activations|filters|heatmap MODEL.keras [IMAGE] [--layer NAME] [--out PNG]

``--distributed``: data-parallel over the processes of ``mpiexec -n N fastconv train ...``
(``--batch-size`` is the global batch; only rank 0 prints and writes files).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path


class CommandError(Exception):
    """A user-facing error: printed as ``fastconv <command>: error: ...``, exit status 2."""


# --------------------------------------------------------------------------------------- info
def cmd_info(args):
    import fastconv

    info = fastconv.info()
    for key, value in info.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        print(f"{key}: {value}")
    runtimes = info["openmp_runtimes_loaded"]
    if len(runtimes) > 1:
        print(
            f"fastconv info: warning: {len(runtimes)} different OpenMP runtimes are loaded "
            f"({', '.join(runtimes)}); their thread pools compete for the cores and "
            "threadpoolctl or OMP_NUM_THREADS may steer only one of them",
            file=sys.stderr,
        )
    return 0


# -------------------------------------------------------------------------------- make-subset
def subset_plan(original_dir, new_base_dir, train=1000, validation=500, test=1000):
    """The lecture's make_subset as a list of (src, dst) copies: train gets cat.0..cat.N-1 (and
    dogs), validation the next ``validation``, test the next ``test``. Raises CommandError,
    before anything is copied, if a source file is missing or a destination folder exists."""
    original_dir, new_base_dir = Path(original_dir), Path(new_base_dir)
    for name, n in (("--train", train), ("--validation", validation), ("--test", test)):
        if n < 0:
            raise CommandError(f"{name} must be >= 0, got {n}")
    if not original_dir.is_dir():
        raise CommandError(f"ORIGINAL_DIR {original_dir} is not a directory")
    plan, missing, existing = [], [], []
    start = 0
    for subset_name, count in (("train", train), ("validation", validation), ("test", test)):
        end = start + count
        for category in ("cat", "dog"):
            dst_dir = new_base_dir / subset_name / category
            if dst_dir.exists():
                existing.append(str(dst_dir))
            for i in range(start, end):
                fname = f"{category}.{i}.jpg"
                src = original_dir / fname
                if not src.is_file():
                    missing.append(fname)
                plan.append((src, dst_dir / fname))
        start = end
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise CommandError(
            f"{len(missing)} source file(s) missing from {original_dir}: {shown}. "
            "Nothing was copied."
        )
    if existing:
        raise CommandError(
            f"destination folder(s) already exist: {', '.join(existing)}. "
            "Remove them or choose another NEW_BASE_DIR. Nothing was copied."
        )
    return plan


def make_subset(original_dir, new_base_dir, train=1000, validation=500, test=1000):
    """Copy as the lecture's script does; returns the number of files copied."""
    plan = subset_plan(original_dir, new_base_dir, train, validation, test)
    made = set()
    for src, dst in plan:
        if dst.parent not in made:
            os.makedirs(dst.parent)
            made.add(dst.parent)
        shutil.copyfile(src, dst)
    # empty subsets still get their folders, as os.makedirs in the lecture's loop does
    for subset_name in ("train", "validation", "test"):
        for category in ("cat", "dog"):
            d = Path(new_base_dir) / subset_name / category
            if d not in made:
                os.makedirs(d)
    return len(plan)


def cmd_make_subset(args):
    n = make_subset(args.original_dir, args.new_base_dir, args.train, args.validation, args.test)
    v0 = args.train
    t0 = args.train + args.validation
    print(
        f"Copied {n} files into {args.new_base_dir}: "
        f"train {0}-{v0 - 1}, validation {v0}-{t0 - 1}, test {t0}-{t0 + args.test - 1} "
        "of each class (cat, dog)."
    )
    return 0


# ------------------------------------------------------------------------------------- train
def _verbose():
    return 1 if sys.stdout.isatty() else 2


def _start_distributed():
    """--distributed: data-parallel training over the processes of the MPI job."""
    from fastconv import distribution

    distribution.set_distribution(distribution.DataParallel())
    if not distribution.is_chief():
        sys.stdout = open(os.devnull, "w")  # rank 0 prints for the job


def _setup(args):
    import fastconv

    if args.distributed:
        _start_distributed()
    if args.threads is not None:  # the parser checked the range
        fastconv.set_num_threads(args.threads)
    if args.winograd:
        fastconv.set_winograd(True)
        print("Convolutions: Winograd F(2x2, 3x3) where it applies (--winograd)")
    if args.seed is not None:
        from fastconv.utils import set_random_seed

        set_random_seed(args.seed)


def load_mnist_family(name):
    from fastconv import datasets

    loaders = {
        "digits": datasets.digits.load_data,
        "mnist": datasets.mnist.load_data,
        "fashion_mnist": datasets.fashion_mnist.load_data,
    }
    (x_train, y_train), (x_test, y_test) = loaders[name]()

    def prep(x):
        return (x.reshape((len(x), 28, 28, 1)).astype("float32")) / 255

    return (prep(x_train), y_train), (prep(x_test), y_test)


def cmd_train_mnist(args):
    _setup(args)
    try:
        (x_train, y_train), (x_test, y_test) = load_mnist_family(args.dataset)
    except (OSError, ValueError) as e:
        raise CommandError(f"could not load the {args.dataset} data set: {e}") from e
    print(f"Data set {args.dataset}: {len(x_train)} training and {len(x_test)} test images")
    from fastconv.applications import build_mnist_model

    model = build_mnist_model()
    print(f"Model: the lecture's MNIST convnet, {model.count_params():,} parameters")
    verbose = _verbose()
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=verbose)
    seconds = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy: {test_acc:.4f} (test loss {test_loss:.4f})")
    print(
        f"Training: {len(x_train) * args.epochs / seconds:.1f} images/s "
        f"({seconds:.1f} s for {args.epochs} epoch(s) of {len(x_train)} images)"
    )
    if args.save:
        model.save(args.save)
        print(f"Saved the model to {args.save}")
    return 0


def cmd_train_cats_vs_dogs(args):
    data_dir = Path(args.data_dir)
    for sub in ("train", "validation", "test"):
        if not (data_dir / sub).is_dir():
            raise CommandError(
                f"{data_dir / sub} is not a directory: DATA_DIR must hold train/, validation/ "
                "and test/ with one sub-folder per class (see `fastconv make-subset`)"
            )
    _setup(args)
    import fastconv
    from fastconv.applications import build_cats_vs_dogs_model
    from fastconv.utils import image_dataset_from_directory, plot_history

    def folder(sub):
        return image_dataset_from_directory(
            data_dir / sub, image_size=(180, 180), batch_size=args.batch_size, seed=args.seed
        )

    try:
        train_dataset = folder("train")
        validation_dataset = folder("validation")
        test_dataset = folder("test")
    except ValueError as e:
        raise CommandError(str(e)) from e
    model = build_cats_vs_dogs_model(augment=args.augment)
    print(
        f"Model: the lecture's 180x180 convnet{' with augmentation' if args.augment else ''}, "
        f"{model.count_params():,} parameters"
    )
    callbacks = [
        fastconv.callbacks.ModelCheckpoint(
            filepath=args.save, save_best_only=True, monitor="val_loss"
        )
    ]
    start = time.perf_counter()
    history = model.fit(
        train_dataset,
        epochs=args.epochs,
        validation_data=validation_dataset,
        callbacks=callbacks,
        verbose=_verbose(),
    )
    seconds = time.perf_counter() - start
    print(f"Training took {seconds:.1f} s; best checkpoint (lowest val_loss): {args.save}")
    if args.plot and fastconv.distribution.is_chief():
        plot_history(history, args.plot)
        print(f"Wrote the training curves to {args.plot}")
    if not Path(args.save).is_file():
        raise CommandError(f"no checkpoint was written to {args.save}")
    test_model = fastconv.models.load_model(args.save)
    test_loss, test_acc = test_model.evaluate(test_dataset, verbose=0)
    print(f"Test accuracy: {test_acc:.3f} (test loss {test_loss:.4f})")
    return 0


# -------------------------------------------------------------------------------------- show
def _load_image(path, model):
    """The image at ``path`` as ``model`` takes it: RGB or grey, resized (bilinear) to the
    input's height and width, in the input's value range (0..255 behind ``Rescaling(1/255)``)."""
    import numpy as np
    from PIL import Image

    from fastconv.visualize._common import input_range

    h, w, channels = model.input.shape[1:]
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB").resize((w, h), Image.BILINEAR)
    except (OSError, ValueError) as e:
        raise CommandError(f"cannot read the image {path}: {e}") from e
    pixels = np.asarray(img, np.float32).reshape(h, w, channels) / 255.0
    lo, hi = input_range(model)
    return pixels, lo + (hi - lo) * pixels


def cmd_show(args):
    from fastconv import visualize
    from fastconv.models import load_model

    try:
        model = load_model(args.model_path)
    except (OSError, ValueError, KeyError) as e:
        raise CommandError(f"cannot load the model {args.model_path}: {e}") from e
    out = args.out or f"{args.what}.png"
    try:
        if args.what == "filters":
            convs = visualize.conv_and_pooling_layers(model)
            layer = args.layer or (convs[0] if convs else visualize.last_conv_layer(model))
            visualize.plot_filters(model, layer, out, filters=args.filters)
        elif args.image is None:
            raise CommandError(f"`show {args.what}` needs an IMAGE")
        elif args.what == "activations":
            _, image = _load_image(args.image, model)
            visualize.plot_activations(model, image, out, [args.layer] if args.layer else None)
        else:
            pixels, image = _load_image(args.image, model)
            heatmap = visualize.grad_cam(model, image, args.layer)[0]
            p = model.predict(image[None], verbose=0)[0]
            title = f"{Path(args.image).name}: prediction {', '.join(f'{v:.3f}' for v in p)}"
            visualize.plot_heatmap(pixels, heatmap, out, title=title)
    except ValueError as e:  # an unknown layer or filter, a model the picture does not fit
        raise CommandError(str(e)) from e
    print(f"Wrote {out}")
    return 0


# -------------------------------------------------------------------------------------- main
def _int_in(low, high):
    """An argparse type: an integer in [low, high], else a one-line usage error (exit status 2)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


_INT32_MAX = 2**31 - 1
_positive_int = _int_in(1, _INT32_MAX)
_count = _int_in(0, 10**7)  # images per class to copy
_seed = _int_in(0, 2**32 - 1)  # the seeds NumPy's legacy generator and Keras accept


def _threads(text):
    from fastconv.runtime import MAX_THREADS

    return _int_in(1, MAX_THREADS)(text)


def _output_file(suffix=""):
    """An argparse type: a file (ending in ``suffix``) in a folder that exists, refused before
    any training."""

    def parse(text):
        if not text.endswith(suffix):
            raise argparse.ArgumentTypeError(f"must name a {suffix} file, got {text!r}")
        folder = Path(text).expanduser().resolve().parent
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: the folder {folder} does not exist")
        return text

    parse.__name__ = f"{suffix} file" if suffix else "file"
    return parse


def cmd_profile(args):
    import numpy as np

    import fastconv
    from fastconv.applications import build_cats_vs_dogs_model, build_mnist_model

    if args.threads is not None:
        fastconv.set_num_threads(args.threads)
    mnist = args.model == "mnist"
    model = build_mnist_model() if mnist else build_cats_vs_dogs_model()
    batch = args.batch_size or (64 if mnist else 32)
    rng = np.random.default_rng(0)
    x = (rng.random((batch,) + model.input_shape[1:]) * (1 if mnist else 255)).astype("float32")
    y = None if args.inference else rng.integers(0, 10 if mnist else 2, batch)
    model.profile(x, y, steps=args.steps)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastconv", description="Fast CNN training on multicore CPUs, Keras-shaped."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("info", help="print version, kernel ISA and threads")
    p.set_defaults(func=cmd_info)
    _add_make_subset(sub)
    _add_train(sub)
    _add_show(sub)
    _add_profile(sub)
    return parser


def _add_make_subset(sub):
    p = sub.add_parser(
        "make-subset",
        help="copy cat.N.jpg/dog.N.jpg into train/validation/test folders (the lecture's script)",
        description="Copy Kaggle's dogs-vs-cats files into NEW_BASE_DIR/{train,validation,test}/"
        "{cat,dog} as the lecture's make_subset does: consecutive index ranges, train first.",
    )
    p.add_argument("original_dir", metavar="ORIGINAL_DIR", help="folder with cat.N.jpg, dog.N.jpg")
    p.add_argument("new_base_dir", metavar="NEW_BASE_DIR", help="folder to create the subsets in")
    p.add_argument("--train", type=_count, default=1000, help="images per class (default 1000)")
    p.add_argument("--validation", type=_count, default=500, help="per class (default 500)")
    p.add_argument("--test", type=_count, default=1000, help="per class (default 1000)")
    p.set_defaults(func=cmd_make_subset)


def _add_train(sub):
    p = sub.add_parser("train", help="train one of the lecture's models")
    tsub = p.add_subparsers(dest="model", metavar="MODEL")
    tsub.required = True

    def common(q, epochs, batch_size):
        q.add_argument("--epochs", type=_positive_int, default=epochs)
        q.add_argument("--batch-size", type=_positive_int, default=batch_size)
        q.add_argument("--threads", type=_threads, default=None, help="kernel threads")
        q.add_argument("--seed", type=_seed, default=None, help="fastconv.utils.set_random_seed")
        q.add_argument(
            "--distributed",
            action="store_true",
            help="data-parallel over the processes of `mpiexec -n N` (needs fastconv[mpi])",
        )
        q.add_argument(
            "--winograd",
            action="store_true",
            help="Winograd F(2x2, 3x3) for 3x3 convolutions (faster; see fastconv.set_winograd)",
        )

    q = tsub.add_parser("mnist", help="the lecture's MNIST convnet")
    q.add_argument(
        "--dataset",
        choices=("digits", "mnist", "fashion_mnist"),
        default="digits",
        help="digits (shipped, default), mnist or fashion_mnist (found locally or downloaded)",
    )
    common(q, 5, 64)
    q.add_argument(
        "--save",
        type=_output_file(".keras"),
        default=None,
        metavar="PATH",
        help="save the model (.keras)",
    )
    q.set_defaults(func=cmd_train_mnist)

    q = tsub.add_parser("cats-vs-dogs", help="the lecture's 180x180 convnet on image folders")
    q.add_argument("data_dir", metavar="DATA_DIR", help="folder with train/, validation/, test/")
    common(q, 30, 32)
    q.add_argument("--augment", action="store_true", help="data augmentation and dropout")
    q.add_argument(
        "--save",
        type=_output_file(".keras"),
        default="best.keras",
        help="best checkpoint (default best.keras)",
    )
    q.add_argument(
        "--plot", type=_output_file(), default=None, metavar="PNG", help="draw loss/accuracy curves"
    )
    q.set_defaults(func=cmd_train_cats_vs_dogs)


def _add_show(sub):
    p = sub.add_parser(
        "show",
        help="draw activations, filter patterns or a Grad-CAM heatmap of a saved model",
        description="Look inside a convnet saved by `fastconv train`: the activations of its "
        "conv and pooling layers for IMAGE, the input patterns its filters respond to most, or "
        "the Grad-CAM heatmap of its prediction for IMAGE (written as PNG).",
    )
    p.add_argument("what", choices=("activations", "filters", "heatmap"))
    p.add_argument("model_path", metavar="MODEL", help="a .keras file")
    p.add_argument("image", metavar="IMAGE", nargs="?", help="an image (not used by filters)")
    p.add_argument(
        "--layer",
        default=None,
        metavar="NAME",
        help="layer to show (default: activations every conv and pooling layer, filters the "
        "first conv layer, heatmap the last conv layer)",
    )
    p.add_argument("--filters", type=_int_in(1, 1024), default=16, help="filters (default 16)")
    p.add_argument("--out", type=_output_file(), default=None, metavar="PNG", help="output file")
    p.set_defaults(func=cmd_show)


def _add_profile(sub):
    p = sub.add_parser(
        "profile",
        help="time one of the lecture's models per layer and pass (random data)",
        description="Where a training (or inference) step of the lecture's model goes: per "
        "layer and pass the time, its share of the step, GFLOP/s, the share of this machine's "
        "measured FP32 peak, the convolution algorithm, and the time outside the kernels.",
    )
    p.add_argument(
        "model", choices=("mnist", "cats-vs-dogs"), metavar="MODEL", help="mnist or cats-vs-dogs"
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="default: the lecture's (64 for mnist, 32 for cats-vs-dogs)",
    )
    p.add_argument("--steps", type=_int_in(1, 1000), default=5, help="timed steps (default 5)")
    p.add_argument("--inference", action="store_true", help="profile predict, not training")
    p.add_argument("--threads", type=_threads, default=None, help="kernel threads")
    p.set_defaults(func=cmd_profile)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from fastconv.utils.image_dataset import ImageReadError

    try:
        return args.func(args)
    except (CommandError, ImageReadError) as e:  # a bad image met mid-training is a user error
        name = "fastconv " + args.command + (f" {args.model}" if args.command == "train" else "")
        print(f"{name}: error: {e}", file=sys.stderr)
        from fastconv import distribution

        distribution.abort(2)  # with --distributed: end every process of the job
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
