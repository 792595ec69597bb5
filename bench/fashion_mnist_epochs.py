"""The lecture's MNIST convnet trained the lecture's way on real Fashion-MNIST, fastconv and PyTorch
side by side in one run: test accuracy after each framework's epochs, and seconds per epoch.

    python bench/fashion_mnist_epochs.py [--epochs 5] [--torch-epochs 1] [--seeds 0,1]
        [--threads 2] [--conv-algorithm auto]

fastconv trains once per seed (the issue's bar is the median over two seeds); PyTorch once, with
the first seed. --conv-algorithm is fastconv.set_conv_algorithm's setting (default: "auto", as
users get it).

Fashion-MNIST comes from Debian (`apt-get install -y dataset-fashion-mnist`) or any path that
`fastconv.datasets.fashion_mnist.load_data` searches. PyTorch (`pip install torch==2.13.0`) is
optional; without it only fastconv runs. Both use rmsprop (lr 1e-3, rho 0.9, eps 1e-7 as Keras),
batch 64, shuffled each epoch, NHWC/channels_last, the same number of threads.
"""

from __future__ import annotations

import argparse
import time

import fcbench  # noqa: F401  (first: PyTorch before fastconv, each keeps its OpenMP defaults)

# isort: split
import fastconv as keras
import numpy as np
from fastconv.applications import build_mnist_model
from fcbench.baselines.pytorch import torch_model


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def run_fastconv(data, epochs: int, seed: int) -> dict:
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = build_mnist_model()  # the lecture's convnet, compiled the lecture's way
    timer = EpochTimer()
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=2, callbacks=[timer])
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {"accuracy": accuracy, "epoch_seconds": timer.seconds}


def run_torch(data, epochs: int, seed: int, threads: int) -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model, optimizer, loss_fn = torch_model(torch, "A")  # the same graph, RMSprop as Keras'
    (x_train, y_train), (x_test, y_test) = data

    def nchw(x):
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

    xt, yt = nchw(x_train), torch.from_numpy(y_train.astype(np.int64))
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = order[i : i + 64]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        predictions = model(nchw(x_test)).argmax(1).numpy()
    return {"accuracy": float((predictions == y_test).mean()), "epoch_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--torch-epochs", type=int, default=1)
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds for fastconv")
    parser.add_argument("--threads", type=int, default=keras.get_num_threads())
    parser.add_argument("--conv-algorithm", default="auto", help="set_conv_algorithm's setting")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    keras.set_num_threads(args.threads)
    keras.set_conv_algorithm(args.conv_algorithm)
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    data = (
        (x_train.reshape(-1, 28, 28, 1).astype("float32") / 255, y_train),
        (x_test.reshape(-1, 28, 28, 1).astype("float32") / 255, y_test),
    )
    runs = [run_fastconv(data, args.epochs, seed) for seed in seeds]
    theirs = (
        run_torch(data, args.torch_epochs, seeds[0], args.threads) if args.torch_epochs else None
    )
    print(
        f"\n{args.threads} threads, Fashion-MNIST 60,000 training images, batch 64, rmsprop, "
        f"conv algorithm {args.conv_algorithm!r}"
    )
    for seed, run in zip(seeds, runs):
        print(f"fastconv seed {seed}: test accuracy {run['accuracy']:.4f} after {args.epochs} "
              f"epochs; epoch seconds {[round(s, 1) for s in run['epoch_seconds']]}")  # fmt: skip
    print(f"fastconv: median test accuracy over seeds {seeds}: "
          f"{np.median([run['accuracy'] for run in runs]):.4f}")  # fmt: skip
    ours = runs[0]
    if theirs:
        print(f"PyTorch:  test accuracy {theirs['accuracy']:.4f} after {args.torch_epochs} epochs; "
              f"epoch seconds {[round(s, 1) for s in theirs['epoch_seconds']]}")  # fmt: skip
        ratio = np.median(theirs["epoch_seconds"]) / np.median(ours["epoch_seconds"])
        print(f"epoch time ratio PyTorch / fastconv (medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
