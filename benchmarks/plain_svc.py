"""Plain scikit-learn, one process: q1b's four SVC fits as a user would write them.

For k in rbf, poly on MNIST and Fashion-MNIST: `SVC(kernel=k).fit(X[:10000] / 255,
y[:10000]).predict(X_test / 255)`, SVC's defaults (C=1, gamma="scale", degree 3). Reads
the IDX files with numpy only (no tune_mnist). Prints one JSON line (per case: fit and
predict ms, accuracy) and saves the predictions to --out (keys "mnist_rbf", ...).
end_to_end.py runs it as the baseline; by hand:

    python benchmarks/plain_svc.py --data-dir DATA --out plain.npz
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
from sklearn.svm import SVC

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
LAYOUT = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}  # torchvision's <Class>/raw/


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(root: Path, name: str) -> dict[str, np.ndarray]:
    for folder in (root / name, root / LAYOUT[name] / "raw"):
        found = {}
        for key, stem in FILES.items():
            path = next((p for p in (folder / f"{stem}.gz", folder / stem) if p.is_file()), None)
            if path:
                found[key] = read_idx(path)
        if len(found) == len(FILES):
            return found
    raise SystemExit(f"{name}: no IDX files under {root}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-samples", type=int, default=10_000)
    args = parser.parse_args()
    cases, predictions = {}, {}
    for name in ("mnist", "fashion-mnist"):
        data = load(args.data_dir, name)
        n = args.train_samples
        x = data["train_images"][:n].reshape(len(data["train_images"][:n]), -1) / 255
        x_test = data["test_images"].reshape(len(data["test_images"]), -1) / 255
        for kernel in ("rbf", "poly"):
            start = time.perf_counter()
            svc = SVC(kernel=kernel).fit(x, data["train_labels"][:n])
            fitted = time.perf_counter()
            predicted = svc.predict(x_test)
            done = time.perf_counter()
            predictions[f"{name}_{kernel}"] = predicted
            cases[f"{name}/{kernel}"] = {
                "fit_ms": round(1000 * (fitted - start)),
                "predict_ms": round(1000 * (done - fitted)),
                "accuracy": round(100 * float(np.mean(predicted == data["test_labels"])), 2),
                "n_support": int(svc.n_support_.sum()),
            }
    np.savez(args.out, **predictions)
    print(json.dumps(cases))


if __name__ == "__main__":
    main()
