"""Small CNN classifiers that gankit trains and ships as feature extractors for its offline data.

They play the role Inception-v3 plays for natural images: 128-d penultimate features for
FID/KID/precision-recall, logits for the "classifier score" (the Inception Score with another
classifier), and per-channel digit predictions for counting the modes of stacked digits
(Metz et al. 2016, "Unrolled GANs"; Srivastava et al. 2017, "VEEGAN").

Weights are stored as safetensors with the architecture (name, input shape, class count) and the
training report in the file's metadata, so loading never unpickles and a score's protocol is
fixed by the extractor's name plus the sha256 of the weights file.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from gankit.data import DATASETS, build_dataset
from gankit.data.base import InMemoryData
from gankit.errors import GankitError
from gankit.models.classifier import (  # noqa: F401 - re-exported: the metrics' classifiers
    FORMAT_VERSION,
    MAX_SIZE,
    METADATA_KEY,
    MIN_SIZE,
    SHIPPED,
    ImageClassifier,
    load_classifier,
    save_classifier,
)


# Names load_classifier accepts besides paths -> file in the gankit.weights package.
def _labelled_images(data: dict, split: str, seed: int) -> InMemoryData:
    name = data.get("name")
    if name in DATASETS and "split" not in DATASETS.options(name, framework_args=("seed",)):
        raise GankitError(
            f"data {name!r}: has no train/test split (no `split` option), so a classifier "
            "cannot be trained and scored on it; use a labelled image data set such as digits, "
            "idx or cifar10"
        )
    source = build_dataset({**data, "split": split}, seed)
    if not isinstance(source, InMemoryData) or not source.is_image:
        raise GankitError(
            f"data {name!r} ({split}): a classifier needs a finite image data set, "
            f"got {source.describe()}"
        )
    if source.labels is None:
        raise GankitError(
            f"data {name!r} ({split}): has no labels, so no classifier can be trained on it"
        )
    return source


def _default_name(data: dict) -> str:
    name = str(data.get("name"))
    if name in ("idx", "folder") and data.get("path"):
        name = Path(str(data["path"])).expanduser().name or name
    elif name == "idx" and data.get("dataset"):
        name = str(data["dataset"])
    return f"gankit-{name}-cnn"


def _shift(x: Tensor, generator: torch.Generator, pad: int = 1) -> Tensor:
    """Translate every image by its own random offset in [-pad, pad]^2 (pad with -1, the
    background of [-1, 1] images, then crop at a random position)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), value=-1.0)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
    # Advanced indices separated by a slice put their broadcast dims first: (n, h, w, C).
    return padded[torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def class_logits(model: ImageClassifier, images: Tensor, batch_size: int = 512) -> Tensor:
    """Class logits (N, C) of every image, in batches (model in eval mode; its previous mode is
    restored)."""
    was_training = model.training
    model.eval()
    try:
        out = [model(images[i : i + batch_size])[1] for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, model.num_classes)


def predict(model: ImageClassifier, images: Tensor, batch_size: int = 512) -> Tensor:
    """Arg-max class of every image."""
    return class_logits(model, images, batch_size).argmax(1)


def accuracy(model: ImageClassifier, images: Tensor, labels: Tensor) -> float:
    return float((predict(model, images) == labels).double().mean())


def train_classifier(
    data: dict,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    name: str | None = None,
) -> tuple[ImageClassifier, dict]:
    """Train an ImageClassifier on the train split of `data` (a recipe's `data:` section) and
    score it on its test split. Adam, cosine learning-rate decay per step, random 1-pixel
    translations. Deterministic given the seed; the caller's global RNG state is left as it was.

    Returns the model in eval mode and a report {data, epochs, train_accuracy, test_accuracy,
    n_train, n_test, seed, seconds, batch_size, lr}.
    """
    if epochs < 1 or batch_size < 2:
        raise GankitError(f"epochs must be >= 1 and batch_size >= 2, got {epochs}, {batch_size}")
    start = time.perf_counter()
    train = _labelled_images(data, "train", seed)
    test = _labelled_images(data, "test", seed)
    if train.shape != test.shape:
        raise GankitError(
            f"data {data.get('name')!r}: train images are {train.shape} but test images are "
            f"{test.shape}; they must match"
        )
    num_classes = max(
        train.num_classes or 0, int(train.labels.max()) + 1, int(test.labels.max()) + 1
    )
    x, y = train.x, train.labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ImageClassifier(train.shape, num_classes, name or _default_name(data))
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        steps_per_epoch = math.ceil(len(x) / batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs * steps_per_epoch
        )
        model.train()
        for epoch in range(epochs):
            perm = torch.randperm(len(x), generator=generator)
            bar = tqdm(
                range(0, len(x), batch_size),
                desc=f"{model.name} epoch {epoch + 1}/{epochs}",
                unit="batch",
                disable=not progress,
                leave=False,
            )
            for i in bar:
                idx = perm[i : i + batch_size]
                if len(idx) >= 2:  # batch norm needs more than one sample
                    xb = _shift(x[idx], generator)
                    loss = F.cross_entropy(model(xb)[1], y[idx])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                schedule.step()
            bar.close()
    model.eval()
    report = {
        "data": dict(data),
        "epochs": epochs,
        "train_accuracy": accuracy(model, x, y),
        "test_accuracy": accuracy(model, test.x, test.labels),
        "n_train": len(x),
        "n_test": len(test.x),
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "batch_size": batch_size,
        "lr": lr,
    }
    return model, report


# --------------------------------------------------------------------------------- files


# --------------------------------------------------------------------------------- stacked digits


@torch.no_grad()
def stacked_digit_probabilities(
    classifier: ImageClassifier, images: Tensor, batch_size: int = 512
) -> Tensor:
    """Class probabilities of each channel of (N, 3, H, W) stacked-digit images -> (N, 3, C).

    Each channel is classified on its own as a 1-channel image by a 1-channel classifier (the
    stacked MNIST protocol: 1000 modes = 10^3 channel-digit triples). The arg-max is the
    protocol's digit; the probability itself says how digit-like a channel is."""
    if classifier.input_shape[0] != 1:
        raise GankitError(
            f"{classifier.name}: stacked digits need a 1-channel classifier, this one takes "
            f"{classifier.input_shape[0]} channels"
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise GankitError(
            f"stacked digits: expected images of shape (N, 3, H, W), one digit per channel, "
            f"got shape {tuple(images.shape)}"
        )
    n, _, h, w = images.shape
    flat = images.reshape(n * 3, 1, h, w)
    return class_logits(classifier, flat, batch_size).softmax(1).reshape(n, 3, -1)


def stacked_digit_predictions(
    classifier: ImageClassifier, images: Tensor, batch_size: int = 512
) -> Tensor:
    """Predicted digit of each channel of (N, 3, H, W) stacked-digit images -> LongTensor (N, 3)
    (the arg-max of stacked_digit_probabilities)."""
    return stacked_digit_probabilities(classifier, images, batch_size).argmax(2)
