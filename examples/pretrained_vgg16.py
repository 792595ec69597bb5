"""The chapter's pretrained section (Deep Learning with Python, 2nd ed., 8.3), step by step, with
only the imports changed from ``from tensorflow import keras``:

1. Fast feature extraction: ``conv_base.predict`` over the datasets once, then a small dense
   classifier trained on the stored features (no augmentation possible).
2. Feature extraction with data augmentation: the frozen base inside a model, augmentation and
   ``preprocess_input`` in front; every epoch runs the base (inference only: it is frozen).
3. Fine-tuning: block5 unfrozen, a low learning rate, starting from step 2's model.

Run: python examples/pretrained_vgg16.py cats_vs_dogs_small [--weights PATH] [--image-size 180]
     [--epochs N]
DATA_DIR holds train/, validation/ and test/ with cat/ and dog/ (``fastconv make-subset``).
Without --weights, Keras' ImageNet weights are downloaded once into ~/.keras/models (a Keras
user's cached copy is used as it is). The chapter trains 20, 50 and 30 epochs; --epochs N runs
N in each step for a quick look.
"""

import argparse
import pathlib

import fastconv as keras
import numpy as np
from fastconv import layers

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("data_dir", type=pathlib.Path)
parser.add_argument("--weights", default="imagenet", help="a Keras VGG16 weight file (no top)")
parser.add_argument("--image-size", type=int, default=180)
parser.add_argument("--epochs", type=int, default=None, help="epochs per step (default: 20/50/30)")
parser.add_argument("--batch-size", type=int, default=32)
args = parser.parse_args()
new_base_dir, size = args.data_dir, args.image_size


def epochs(chapter):
    return args.epochs or chapter


train_dataset = keras.utils.image_dataset_from_directory(
    new_base_dir / "train", image_size=(size, size), batch_size=args.batch_size
)
validation_dataset = keras.utils.image_dataset_from_directory(
    new_base_dir / "validation", image_size=(size, size), batch_size=args.batch_size
)
test_dataset = keras.utils.image_dataset_from_directory(
    new_base_dir / "test", image_size=(size, size), batch_size=args.batch_size
)

# ----------------------------------------------------------------------------------------------
# 1. Fast feature extraction without data augmentation
conv_base = keras.applications.vgg16.VGG16(
    weights=args.weights, include_top=False, input_shape=(size, size, 3)
)
conv_base.summary()


def get_features_and_labels(dataset):
    all_features = []
    all_labels = []
    for images, labels in dataset:
        preprocessed_images = keras.applications.vgg16.preprocess_input(images)
        features = conv_base.predict(preprocessed_images, verbose=0)
        all_features.append(features)
        all_labels.append(labels)
    return np.concatenate(all_features), np.concatenate(all_labels)


train_features, train_labels = get_features_and_labels(train_dataset)
val_features, val_labels = get_features_and_labels(validation_dataset)
test_features, test_labels = get_features_and_labels(test_dataset)
print("Features:", train_features.shape)  # (2000, 5, 5, 512) at 180x180

inputs = keras.Input(shape=train_features.shape[1:])
x = layers.Flatten()(inputs)
x = layers.Dense(256)(x)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs, outputs)
model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
callbacks = [
    keras.callbacks.ModelCheckpoint(
        filepath="feature_extraction.keras", save_best_only=True, monitor="val_loss"
    )
]
history = model.fit(
    train_features,
    train_labels,
    epochs=epochs(20),
    validation_data=(val_features, val_labels),
    callbacks=callbacks,
)
test_model = keras.models.load_model("feature_extraction.keras")
print(
    f"1. Feature extraction: test accuracy {test_model.evaluate(test_features, test_labels)[1]:.3f}"
)

# ----------------------------------------------------------------------------------------------
# 2. Feature extraction together with data augmentation: a frozen base inside the model
conv_base = keras.applications.vgg16.VGG16(
    weights=args.weights, include_top=False, input_shape=(size, size, 3)
)
conv_base.trainable = True
print("Trainable weights before freezing the conv base:", len(conv_base.trainable_weights))  # 26
conv_base.trainable = False
print("Trainable weights after freezing the conv base:", len(conv_base.trainable_weights))  # 0

data_augmentation = keras.Sequential(
    [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.2),
    ]
)
inputs = keras.Input(shape=(size, size, 3))
x = data_augmentation(inputs)
x = keras.applications.vgg16.preprocess_input(x)
x = conv_base(x)
x = layers.Flatten()(x)
x = layers.Dense(256)(x)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs, outputs)
model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
callbacks = [
    keras.callbacks.ModelCheckpoint(
        filepath="feature_extraction_with_data_augmentation.keras",
        save_best_only=True,
        monitor="val_loss",
    )
]
history = model.fit(
    train_dataset, epochs=epochs(50), validation_data=validation_dataset, callbacks=callbacks
)
test_model = keras.models.load_model("feature_extraction_with_data_augmentation.keras")
test_loss, test_acc = test_model.evaluate(test_dataset)
print(f"2. With augmentation: test accuracy {test_acc:.3f}")

# ----------------------------------------------------------------------------------------------
# 3. Fine-tuning the last convolution block
conv_base.trainable = True
for layer in conv_base.layers[:-4]:
    layer.trainable = False
print("Trainable weights while fine-tuning:", len(model.trainable_weights))  # 10

model.compile(
    loss="binary_crossentropy",
    optimizer=keras.optimizers.RMSprop(learning_rate=1e-5),
    metrics=["accuracy"],
)
callbacks = [
    keras.callbacks.ModelCheckpoint(
        filepath="fine_tuning.keras", save_best_only=True, monitor="val_loss"
    )
]
history = model.fit(
    train_dataset, epochs=epochs(30), validation_data=validation_dataset, callbacks=callbacks
)
model = keras.models.load_model("fine_tuning.keras")
test_loss, test_acc = model.evaluate(test_dataset)
print(f"3. Fine-tuned: test accuracy {test_acc:.3f}")
