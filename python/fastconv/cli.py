"""The ``fastconv`` command (also ``python -m fastconv``).

fastconv --version
fastconv info
fastconv make-subset ORIGINAL_DIR NEW_BASE_DIR [--train N --validation N --test N]
fastconv train mnist [--dataset digits|mnist|fashion_mnist] [--epochs 5] [--batch-size 64]
                     [--threads N] [--save PATH] [--seed S] [--distributed] [--conv-algorithm NAME]
fastconv train cats-vs-dogs DATA_DIR [--epochs 30] [--batch-size 32] [--augment]
                     [--save best.keras] [--plot curves.png] [--threads N] [--seed S]
                     [--distributed] [--conv-algorithm NAME]
                     [--pretrained vgg16 [--fine-tune] [--weights PATH] [--image-size 180]]
fastconv show activations|filters|heatmap MODEL.keras [IMAGE] [--layer NAME] [--out PNG]

``--distributed``: data-parallel over the processes of ``mpiexec -n N fastconv train ...``
(``--batch-size`` is the global batch; only rank 0 prints and writes files).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

from . import _core
from ._cli_pretrained import add_pretrained_arguments, check_pretrained_arguments, train_pretrained
from ._cli_subset import _add_make_subset, cmd_make_subset, make_subset, subset_plan  # noqa: F401
from ._cli_types import (
    THREADS_HELP,
    CommandError,
    Parser,
    VersionAction,
    int_in,
    output_file,
    positive_int,
    seed,
    threads,
)

# "auto", "direct", "deterministic", then every pass's algorithms: the core's own list.
CONV_ALGORITHMS = tuple(_core.conv_algorithm_settings())


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


# ------------------------------------------------------------------------------------- train
# Progress as fit prints it (models/progress.py): a live bar on a terminal, one line per epoch
# in a file or a pipe.
_VERBOSE = "auto"

# Optional dependencies: (module, the extra that brings it), checked before any training.
_PLOT_NEEDS = ("matplotlib", "plot")
_DISTRIBUTED_NEEDS = ("mpi4py", "mpi")


def _require(option, module, extra):
    """Raise CommandError, before anything runs, if ``module`` cannot be imported."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise CommandError(
            f"{option} needs {module}, which cannot be imported ({e}); install it with "
            f'pip install "fastconv[{extra}]" (from a clone: pip install ".[{extra}]")'
        ) from None


def _check_optional_dependencies(args):
    if getattr(args, "plot", None):
        _require("--plot", *_PLOT_NEEDS)
    if getattr(args, "distributed", False):
        _require("--distributed", *_DISTRIBUTED_NEEDS)


def _start_distributed(args):
    """--distributed: data-parallel training over the processes of the MPI job."""
    from fastconv import distribution

    distribution.set_distribution(distribution.DataParallel())
    if not distribution.is_chief():
        sys.stdout = open(os.devnull, "w")  # rank 0 prints for the job
    n = distribution.num_processes()
    print(
        f"Distributed: {n} MPI process{'es' if n != 1 else ''} (data-parallel; the global "
        f"batch of {args.batch_size} is split between them, gradients averaged)"
    )


def _setup(args):
    import fastconv

    if args.distributed:
        _start_distributed(args)
    if args.threads is not None:  # the parser checked the range
        fastconv.set_num_threads(args.threads)
    if args.conv_algorithm != "auto":
        fastconv.set_conv_algorithm(args.conv_algorithm)
        print(f"Convolutions: {args.conv_algorithm} where it applies (--conv-algorithm)")
    if args.seed is not None:
        from fastconv.utils import set_random_seed

        set_random_seed(args.seed)


def data_source(name):
    """Where ``fastconv train mnist --dataset name`` reads its data from, in words."""
    from fastconv import datasets

    if name == "digits":
        shipped = datasets.digits.DATA_FILE
        return f"shipped with fastconv ({shipped}); UCI handwritten digits, CC BY 4.0"
    module = getattr(datasets, name)
    try:  # the first folder of the search path that holds all four IDX files
        from fastconv.datasets import _idx

        for folder in _idx.search_dirs(module.DIR_NAMES):
            if _idx._find_in(folder) is not None:
                return f"local files in {folder}"
        return f"downloaded into {_idx.cache_root() / module.DIR_NAMES[0]}"
    except (AttributeError, ImportError, OSError):  # another loader: it reports its own source
        return f"fastconv.datasets.{name}.load_data()"


def learning_rates(epochs, base=1e-3):
    """The main job's learning rate per epoch: RMSprop's default (the lecture's) and, in the last
    two epochs of three or more, a step down to 0.3x then 0.1x. Measured by
    ``python bench/seed_accuracy.py``: the final epochs at the full rate leave the weights
    wandering (test accuracy 0.971 to 0.991 over seeds); stepped down, every seed lands >= 0.98."""
    rates = [base] * epochs
    if epochs >= 3:
        rates[-2:] = [base * 0.3, base * 0.1]
    return rates


def _learning_rate_schedule(args):
    if args.constant_lr:
        return None
    from fastconv.callbacks import LearningRateScheduler

    rates = learning_rates(args.epochs)
    return [LearningRateScheduler(lambda epoch, lr: rates[epoch])]


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
    _check_optional_dependencies(args)
    _setup(args)
    try:
        (x_train, y_train), (x_test, y_test) = load_mnist_family(args.dataset)
        source = data_source(args.dataset)
    except (OSError, ValueError) as e:
        raise CommandError(f"could not load the {args.dataset} data set: {e}") from e
    print(f"Data set {args.dataset}: {len(x_train)} training and {len(x_test)} test images")
    print(f"Data from: {source}")
    from fastconv.applications import build_mnist_model

    model = build_mnist_model()
    print(f"Model: the lecture's MNIST convnet, {model.count_params():,} parameters")
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=_VERBOSE,
        callbacks=_learning_rate_schedule(args),
    )
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
    _check_optional_dependencies(args)
    check_pretrained_arguments(args)
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
            data_dir / sub,
            image_size=(args.image_size,) * 2,
            batch_size=args.batch_size,
            seed=args.seed,
        )

    try:
        train_dataset = folder("train")
        validation_dataset = folder("validation")
        test_dataset = folder("test")
    except ValueError as e:
        raise CommandError(str(e)) from e
    print(f"Data from: {data_dir.resolve()}")
    if args.pretrained:
        return train_pretrained(args, train_dataset, validation_dataset, test_dataset, _VERBOSE)
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
        verbose=_VERBOSE,
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
    parser = Parser(
        prog="fastconv", description="Fast CNN training on multicore CPUs, Keras-shaped."
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("info", help="print version, kernel ISA and threads")
    p.set_defaults(func=cmd_info)
    _add_make_subset(sub)
    _add_train(sub)
    _add_show(sub)
    _add_profile(sub)
    return parser


def _add_train(sub):
    p = sub.add_parser("train", help="train one of the lecture's models")
    tsub = p.add_subparsers(dest="model", metavar="MODEL")
    tsub.required = True

    def common(q, epochs, batch_size):
        q.add_argument("--epochs", type=positive_int, default=epochs, help="training epochs")
        q.add_argument(
            "--batch-size",
            type=positive_int,
            default=batch_size,
            help="images per training step (the global batch with --distributed)",
        )
        q.add_argument("--threads", type=threads, default=None, help=THREADS_HELP)
        q.add_argument(
            "--seed",
            type=seed,
            default=None,
            help="fastconv.utils.set_random_seed(S): initialisation, shuffling, dropout and "
            "augmentation reproducible (default: unseeded)",
        )
        q.add_argument(
            "--distributed",
            action="store_true",
            help="data-parallel over the processes of `mpiexec -n N` (needs fastconv[mpi])",
        )
        q.add_argument(
            "--conv-algorithm",
            choices=CONV_ALGORITHMS,
            default="auto",
            metavar="NAME",
            help="convolution algorithm: auto (measured per layer shape), direct (auto "
            "without Winograd), deterministic (never measured: the same in every run) or one "
            f"of {', '.join(CONV_ALGORITHMS[3:])} (default: %(default)s; "
            "see fastconv.set_conv_algorithm)",
        )

    q = tsub.add_parser("mnist", help="the lecture's MNIST convnet")
    q.add_argument(
        "--dataset",
        choices=("digits", "mnist", "fashion_mnist"),
        default="digits",
        help="digits (shipped with fastconv), mnist or fashion_mnist (found locally or downloaded)",
    )
    common(q, 5, 64)
    q.add_argument(
        "--constant-lr",
        action="store_true",
        help="keep RMSprop's learning rate (0.001) in every epoch; by default the last two "
        "epochs step it down to 0.3x and 0.1x",
    )
    q.add_argument(
        "--save",
        type=output_file(".keras"),
        default=None,
        metavar="PATH",
        help="save the trained model (.keras; default: not saved)",
    )
    q.set_defaults(func=cmd_train_mnist)

    q = tsub.add_parser("cats-vs-dogs", help="the lecture's 180x180 convnet on image folders")
    q.add_argument("data_dir", metavar="DATA_DIR", help="folder with train/, validation/, test/")
    common(q, 30, 32)
    q.add_argument("--augment", action="store_true", help="data augmentation and dropout")
    q.add_argument(
        "--save",
        type=output_file(".keras"),
        default="best.keras",
        help="where the best checkpoint (lowest val_loss) is written",
    )
    q.add_argument(
        "--plot",
        type=output_file(),
        default=None,
        metavar="PNG",
        help='draw loss/accuracy curves (needs matplotlib: pip install "fastconv[plot]"; '
        "default: no plot)",
    )
    add_pretrained_arguments(q)
    q.set_defaults(func=cmd_train_cats_vs_dogs)


def _add_show(sub):
    p = sub.add_parser(
        "show",
        help="draw activations, filter patterns or a Grad-CAM heatmap of a saved model",
        description="Look inside a convnet saved by `fastconv train`: the activations of its "
        "conv and pooling layers for IMAGE, the input patterns its filters respond to most, or "
        "the Grad-CAM heatmap of its prediction for IMAGE (written as PNG).",
    )
    p.add_argument(
        "what",
        choices=("activations", "filters", "heatmap"),
        help="activations, filters or heatmap",
    )
    p.add_argument("model_path", metavar="MODEL", help="a .keras file")
    p.add_argument("image", metavar="IMAGE", nargs="?", help="an image (not used by filters)")
    p.add_argument(
        "--layer",
        default=None,
        metavar="NAME",
        help="layer to show (default: activations every conv and pooling layer, filters the "
        "first conv layer, heatmap the last conv layer)",
    )
    p.add_argument("--filters", type=int_in(1, 1024), default=16, help="filters to draw")
    p.add_argument(
        "--out",
        type=output_file(),
        default=None,
        metavar="PNG",
        help="output file (default: activations.png, filters.png or heatmap.png)",
    )
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
        type=positive_int,
        default=None,
        help="default: the lecture's (64 for mnist, 32 for cats-vs-dogs)",
    )
    p.add_argument("--steps", type=int_in(1, 1000), default=5, help="timed steps")
    p.add_argument("--inference", action="store_true", help="profile predict, not training")
    p.add_argument("--threads", type=threads, default=None, help=THREADS_HELP)
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
