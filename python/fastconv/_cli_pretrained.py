"""``fastconv train cats-vs-dogs DATA_DIR --pretrained vgg16 [--fine-tune]``: the chapter's
pretrained section on the command line (``applications/transfer.py`` builds the models).

1. Feature extraction with data augmentation: VGG16's convolutional base (Keras' ImageNet weights,
   or ``--weights PATH``), frozen, inside a model with augmentation and ``preprocess_input`` in
   front and a new classifier on top; ``--epochs`` epochs with RMSprop.
2. With ``--fine-tune``: block5 unfrozen, recompiled with RMSprop(learning_rate=1e-5),
   ``--fine-tune-epochs`` more epochs.

The checkpoint (``--save``) keeps the model of the lowest validation loss over both phases; the
test accuracy is that model's.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import distribution
from ._cli_types import CommandError, int_in, positive_int
from .applications import transfer
from .callbacks import ModelCheckpoint
from .models import load_model
from .utils import plot_history

__all__ = ["add_pretrained_arguments", "check_pretrained_arguments", "train_pretrained"]


def add_pretrained_arguments(q):
    q.add_argument(
        "--pretrained",
        choices=("vgg16",),
        default=None,
        help="start from VGG16's convolutional base, frozen, with augmentation in front and a "
        "new classifier on top, as the chapter's feature extraction (default: the lecture's "
        "convnet from scratch)",
    )
    q.add_argument(
        "--fine-tune",
        action="store_true",
        help="with --pretrained: then unfreeze block5 and train on with RMSprop(learning_rate="
        f"{transfer.FINE_TUNING_LEARNING_RATE:g}), as the chapter does",
    )
    q.add_argument(
        "--fine-tune-epochs",
        type=positive_int,
        default=None,
        help="epochs of fine-tuning (default: --epochs)",
    )
    q.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="with --pretrained: the base's weights from this Keras weight file (.h5, either "
        "layout) instead of Keras' ImageNet file (downloaded once into ~/.keras/models)",
    )
    q.add_argument(
        "--image-size",
        type=int_in(32, 1024),
        default=180,
        metavar="SIZE",
        help="with --pretrained: images resized to SIZE x SIZE (default: %(default)s, the "
        "chapter's)",
    )


def check_pretrained_arguments(args):
    """CommandError, before anything runs, for options that need --pretrained or a file."""
    if args.pretrained is None:
        given = [
            name
            for name, on in (
                ("--fine-tune", args.fine_tune),
                ("--fine-tune-epochs", args.fine_tune_epochs is not None),
                ("--weights", args.weights is not None),
                ("--image-size", args.image_size != 180),
            )
            if on
        ]
        if given:
            raise CommandError(f"{', '.join(given)} need(s) --pretrained vgg16")
    elif args.weights is not None and not Path(args.weights).is_file():
        raise CommandError(f"--weights {args.weights}: no such file")


def _fit(model, epochs, save, train_dataset, validation_dataset, best, verbose):
    """Fit with the chapter's checkpoint (lowest val_loss, better than ``best`` only); returns
    the lowest val_loss so far and the history."""
    checkpoint = ModelCheckpoint(
        filepath=save, save_best_only=True, monitor="val_loss", initial_value_threshold=best
    )
    history = model.fit(
        train_dataset,
        epochs=epochs,
        validation_data=validation_dataset,
        callbacks=[checkpoint],
        verbose=verbose,
    )
    lowest = min(history.history["val_loss"])
    return (lowest if best is None else min(best, lowest)), history


def train_pretrained(args, train_dataset, validation_dataset, test_dataset, verbose):
    """Both phases of the chapter's pretrained section; prints the test accuracy."""
    weights = args.weights or "imagenet"
    try:
        base = transfer.conv_base(args.image_size, weights)
    except (OSError, ValueError) as e:
        raise CommandError(f"could not load VGG16's weights ({weights}): {e}") from e
    source = "Keras' ImageNet weights" if args.weights is None else args.weights
    print(f"Convolutional base: VGG16 from {source}, {base.count_params():,} parameters, frozen")
    model = transfer.frozen_base_classifier(base)
    print(
        f"Model: augmentation, preprocess_input, the frozen base, Dense(256), Dropout(0.5), "
        f"sigmoid at {args.image_size}x{args.image_size}; "
        f"{len(model.trainable_weights)} trainable weight tensors"
    )
    start = time.perf_counter()
    best, history = _fit(
        model, args.epochs, args.save, train_dataset, validation_dataset, None, verbose
    )
    if args.fine_tune:
        transfer.unfreeze_top_block(base)
        transfer.compile_for_fine_tuning(model)
        print(
            f"Fine-tuning: block5 unfrozen ({len(model.trainable_weights)} trainable weight "
            f"tensors), RMSprop(learning_rate={transfer.FINE_TUNING_LEARNING_RATE:g})"
        )
        epochs = args.fine_tune_epochs or args.epochs
        best, history = _fit(
            model, epochs, args.save, train_dataset, validation_dataset, best, verbose
        )
    seconds = time.perf_counter() - start
    print(f"Training took {seconds:.1f} s; best checkpoint (val_loss {best:.4f}): {args.save}")
    if args.plot and distribution.is_chief():
        plot_history(history, args.plot)
        print(f"Wrote the training curves of the last phase to {args.plot}")
    if not Path(args.save).is_file():
        raise CommandError(f"no checkpoint was written to {args.save}")
    test_loss, test_acc = load_model(args.save).evaluate(test_dataset, verbose=0)
    print(f"Test accuracy: {test_acc:.3f} (test loss {test_loss:.4f})")
    return 0
