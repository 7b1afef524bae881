"""Write shapes.npz: 32x32 RGB images of five shapes on noise (600 train / 200 test).

    python examples/own-model/make_shapes.py

Classes: 0 square, 1 disc, 2 horizontal bar, 3 vertical bar, 4 cross; colours, sizes and
positions vary. Deterministic (seeded), so every run writes the same file.
"""

from pathlib import Path

import numpy as np

SIZE, CLASSES = 32, 5


def draw(rng: np.random.Generator, label: int) -> np.ndarray:
    image = rng.integers(0, 80, size=(SIZE, SIZE, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    cy, cx = rng.integers(10, 22, size=2)
    r = int(rng.integers(4, 8))
    masks = [
        (abs(yy - cy) <= r) & (abs(xx - cx) <= r),
        (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r,
        (abs(yy - cy) <= 1) & (abs(xx - cx) <= r + 2),
        (abs(yy - cy) <= r + 2) & (abs(xx - cx) <= 1),
        ((abs(yy - cy) <= 1) | (abs(xx - cx) <= 1)) & (abs(yy - cy) <= r) & (abs(xx - cx) <= r),
    ]
    image[masks[label]] = rng.integers(150, 256, size=3, dtype=np.uint8)
    return image


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % CLASSES
    return np.stack([draw(rng, int(y)) for y in labels]), labels.astype(np.uint8)


if __name__ == "__main__":
    (x_train, y_train), (x_test, y_test) = split(600, 0), split(200, 1)
    out = Path(__file__).with_name("shapes.npz")
    np.savez_compressed(out, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    print(f"wrote {out}: {x_train.shape} train, {x_test.shape} test, {CLASSES} classes")
