"""Data-parallel training over MPI: the lecture's MNIST convnet on the shipped digits, each
process taking its part of every global batch, gradients averaged with allreduce.

    pip install ".[mpi]"
    mpiexec -n 2 python examples/mpi_data_parallel.py

Two lines differ from a one-process script: the distribution is set before the model is built,
and only rank 0 prints (``fit``'s progress already does so).
"""

import fastconv
from fastconv import distribution
from fastconv.applications import build_mnist_model
from fastconv.datasets import digits
from fastconv.utils import set_random_seed

distribution.set_distribution(distribution.DataParallel())  # before building the model
set_random_seed(0)  # the same shuffles on every process

(x_train, y_train), (x_test, y_test) = digits.load_data()
x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255
x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255

model = build_mnist_model()
model.fit(x_train, y_train, epochs=3, batch_size=64)  # 64 is the global batch
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
if distribution.is_chief():
    print(f"{distribution.num_processes()} processes, {fastconv.get_num_threads()} threads each")
    print(f"Test accuracy: {test_acc:.4f}")
model.save("mnist_data_parallel.keras")  # written by rank 0 only
