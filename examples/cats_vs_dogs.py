"""The lecture's cats-vs-dogs convnet end to end (Deep Learning with Python, section 8.2), with
only the imports changed: the subsets copied from Kaggle's train/ folder, the datasets read
from the folders, the model trained with the best-val_loss checkpoint (and data augmentation
with --augment), the curves drawn, the best model reloaded and tested.

Download train.zip from https://www.kaggle.com/c/dogs-vs-cats/data and unzip it, then:

    python examples/cats_vs_dogs.py train/ cats_vs_dogs_small [--augment] [--epochs 30]

(`pip install ".[plot]"` for the curves.)
"""

import argparse
from pathlib import Path

import fastconv as keras
from fastconv import layers
from fastconv.cli import make_subset
from fastconv.utils import image_dataset_from_directory, plot_history

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("original_dir", help="Kaggle's train/ folder (cat.N.jpg, dog.N.jpg)")
parser.add_argument("new_base_dir", help="where the train/validation/test subsets go")
parser.add_argument("--epochs", type=int, default=30, help="default 30 (100 with --augment)")
parser.add_argument("--augment", action="store_true", help="data augmentation and dropout")
args = parser.parse_args()

new_base_dir = Path(args.new_base_dir)
if not new_base_dir.exists():  # the lecture's make_subset: 1,000 / 500 / 1,000 per class
    make_subset(args.original_dir, new_base_dir, train=1000, validation=500, test=1000)

train_dataset = image_dataset_from_directory(
    new_base_dir / "train", image_size=(180, 180), batch_size=32
)
validation_dataset = image_dataset_from_directory(
    new_base_dir / "validation", image_size=(180, 180), batch_size=32
)
test_dataset = image_dataset_from_directory(
    new_base_dir / "test", image_size=(180, 180), batch_size=32
)

inputs = keras.Input(shape=(180, 180, 3))
x = inputs
if args.augment:
    data_augmentation = keras.Sequential(
        [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.RandomZoom(0.2)]
    )
    x = data_augmentation(x)
x = layers.Rescaling(1.0 / 255)(x)
x = layers.Conv2D(filters=32, kernel_size=3, activation="relu")(x)
x = layers.MaxPooling2D(pool_size=2)(x)
x = layers.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
x = layers.MaxPooling2D(pool_size=2)(x)
x = layers.Conv2D(filters=128, kernel_size=3, activation="relu")(x)
x = layers.MaxPooling2D(pool_size=2)(x)
x = layers.Conv2D(filters=256, kernel_size=3, activation="relu")(x)
x = layers.MaxPooling2D(pool_size=2)(x)
x = layers.Conv2D(filters=256, kernel_size=3, activation="relu")(x)
x = layers.Flatten()(x)
if args.augment:
    x = layers.Dropout(0.5)(x)
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs=inputs, outputs=outputs)
model.summary()
model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])

checkpoint = "convnet_from_scratch" + ("_with_augmentation" if args.augment else "") + ".keras"
callbacks = [
    keras.callbacks.ModelCheckpoint(filepath=checkpoint, save_best_only=True, monitor="val_loss")
]
history = model.fit(
    train_dataset, epochs=args.epochs, validation_data=validation_dataset, callbacks=callbacks
)
try:
    plot_history(history, "cats_vs_dogs_curves.png")
    print("Wrote the training curves to cats_vs_dogs_curves.png")
except ImportError as e:  # matplotlib is optional
    print(f"No curves: {e}")

test_model = keras.models.load_model(checkpoint)
test_loss, test_acc = test_model.evaluate(test_dataset)
print(f"Test accuracy: {test_acc:.3f}")

# The trained model for onnxruntime (pip install ".[onnx]"):
# test_model.export("cats_vs_dogs.onnx", format="onnx")
