import gzip
import re
import tracemalloc

import numpy as np
import pytest

from tune_mnist.errors import TuneMnistError
from tune_mnist.train.data import (
    SMOKE_TEST,
    SMOKE_TRAIN,
    load_dataset,
    load_datasets,
    read_folder,
    read_idx,
    write_idx,
)

from ..conftest import TINY_TEST, TINY_TRAIN, patterned_split, write_dataset


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, suffix):
    images, labels = patterned_split(12, 0)
    write_idx(tmp_path / f"img{suffix}", images)
    write_idx(tmp_path / f"lab{suffix}", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / f"img{suffix}", 2051), images)
    np.testing.assert_array_equal(read_idx(tmp_path / f"lab{suffix}", 2049), labels)


def test_bad_magic_number_names_the_file(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.zeros(5, dtype=np.uint8))
    with pytest.raises(
        TuneMnistError, match=r"labels: bad IDX magic number 0x00000801, expected 0x00000803"
    ):
        read_idx(path, 2051)


def test_truncated_file(tmp_path):
    path = tmp_path / "images.gz"
    write_idx(path, np.zeros((4, 28, 28), dtype=np.uint8))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(
        TuneMnistError,
        match=r"images.gz: truncated or padded IDX file: 3052 bytes, header \(4, 28, 28\) needs 3152",
    ):
        read_idx(path, 2051)


def test_file_shorter_than_a_header(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00")
    with pytest.raises(TuneMnistError, match="truncated IDX file"):
        read_idx(tmp_path / "x", 2049)


def test_corrupt_gzip(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(TuneMnistError, match=r"x.gz: cannot read IDX file"):
        read_idx(tmp_path / "x.gz", 2049)


def refused_in_little_memory(path, message: str) -> None:
    """read_idx refuses the file with `message`, never allocating more than 50 MB on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(TuneMnistError, match=message):
            read_idx(path, 2051)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_gzip_bomb_is_refused_without_decompressing_it(tmp_path):
    # A valid header for 10 images, then 200 MB of zeros: about 1 MB once gzipped.
    path = tmp_path / "bomb.gz"
    write_idx(path, np.zeros((10, 28, 28), dtype=np.uint8))
    header_and_payload = gzip.decompress(path.read_bytes())
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(header_and_payload)
        zeros = bytes(1 << 20)
        for _ in range(200):
            out.write(zeros)
    refused_in_little_memory(
        path,
        r"bomb.gz: truncated or padded IDX file: more than 7856 bytes, "
        r"header \(10, 28, 28\) needs 7856",
    )


def test_absurd_header_is_refused_before_reading(tmp_path):
    # Only the header is there: a reader that tried the payload would say "truncated".
    path = tmp_path / "huge"
    path.write_bytes(b"".join(n.to_bytes(4, "big") for n in (2051, 100_000, 100_000, 100_000)))
    with pytest.raises(
        TuneMnistError,
        match=r"huge: IDX header: declares \(100000, 100000, 100000\), "
        r"1,000,000,000,000,000 bytes once decoded: more than the 1,073,741,824 accepted",
    ):
        read_idx(path, 2051)


def test_raw_file_with_a_short_payload(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.zeros(10, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(
        TuneMnistError,
        match=r"labels: truncated or padded IDX file: 15 bytes, header \(10,\) needs 18",
    ):
        read_idx(path, 2049)


def test_header_promising_gigabytes_over_a_short_file(tmp_path):
    # 1 GB is under the cap, so the payload is read: memory follows what arrives.
    path = tmp_path / "images.gz"
    header = b"".join(n.to_bytes(4, "big") for n in (2051, 1_000, 1_000, 1_000))
    path.write_bytes(gzip.compress(header + bytes(100)))
    refused_in_little_memory(
        path,
        r"images.gz: truncated or padded IDX file: 116 bytes, "
        r"header \(1000, 1000, 1000\) needs 1000000016",
    )


@pytest.mark.parametrize("split", ["train", "test"])
def test_empty_split_is_an_error(tmp_path, split):
    sizes = {"n_train": 0 if split == "train" else TINY_TRAIN}
    sizes["n_test"] = 0 if split == "test" else TINY_TEST
    folder = write_dataset(tmp_path / "mnist", **sizes)
    message = f"mnist: {folder}: the {split} split has no images"
    with pytest.raises(TuneMnistError, match=f"^{re.escape(message)}$"):
        read_folder("mnist", folder)


def test_images_and_labels_of_different_counts(tmp_path):
    folder = write_dataset(tmp_path / "mnist")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(TINY_TEST - 1, dtype=np.uint8))
    with pytest.raises(TuneMnistError, match=f"{TINY_TEST} test images but {TINY_TEST - 1} labels"):
        read_folder("mnist", folder)


def test_labels_outside_0_to_9(tmp_path):
    folder = write_dataset(tmp_path / "mnist")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(TINY_TEST, 10, dtype=np.uint8))
    with pytest.raises(TuneMnistError, match="test label 10 is not 0-9"):
        read_folder("mnist", folder)


def test_missing_file_is_named(tmp_path):
    folder = write_dataset(tmp_path / "mnist")
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(TuneMnistError, match="has no train-labels-idx1-ubyte"):
        read_folder("mnist", folder)


def test_flat_layout_raw_files(tmp_path):
    write_dataset(tmp_path / "fashion-mnist", gz=False)
    data = load_dataset("fashion-mnist", tmp_path)
    assert data.sizes == (TINY_TRAIN, TINY_TEST)
    assert data.train_images.dtype == np.uint8 and data.train_images.shape[1:] == (28, 28)
    np.testing.assert_array_equal(data.train_labels, patterned_split(TINY_TRAIN, 0)[1])


def test_torchvision_layout(tmp_path):
    write_dataset(tmp_path / "FashionMNIST" / "raw")
    assert load_dataset("fashion-mnist", tmp_path).source.endswith("FashionMNIST/raw")


def test_data_dir_from_environment(tmp_path, monkeypatch):
    write_dataset(tmp_path / "mnist")
    monkeypatch.setenv("TUNE_MNIST_DATA", str(tmp_path))
    assert load_dataset("mnist").source == str(tmp_path / "mnist")


def test_cache_folder_is_searched_after_data_dir(tmp_path, monkeypatch):
    write_dataset(tmp_path / "cache" / "MNIST" / "raw")  # as torchvision downloads it
    assert load_dataset("mnist").source == str(tmp_path / "cache" / "MNIST" / "raw")


def test_missing_data_folder(tmp_path):
    with pytest.raises(TuneMnistError, match=r"data folder .*nowhere does not exist"):
        load_dataset("mnist", tmp_path / "nowhere")


def test_no_data_and_no_download_says_what_to_do(tmp_path):
    with pytest.raises(
        TuneMnistError, match=r"mnist: not found under .* forbids downloading; pass --data-dir"
    ):
        load_dataset("mnist", tmp_path)


def test_smoke_without_data_dir_reads_the_bundled_real_sample():
    for name in ("mnist", "fashion-mnist"):
        data = load_dataset(name, smoke=True)
        assert data.sizes == (SMOKE_TRAIN, SMOKE_TEST)
        assert "sample" in data.source
        # real digits: all ten classes, mostly-black backgrounds
        assert set(np.unique(data.train_labels)) == set(range(10))
        assert 0.1 < (data.train_images > 0).mean() < 0.6
    # the first MNIST training labels are the famous 5, 0, 4, 1, 9
    assert load_dataset("mnist", smoke=True).train_labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_smoke_with_data_dir_takes_the_first_images(tmp_path):
    write_dataset(tmp_path / "mnist", n_train=1200, n_test=600)
    data = load_dataset("mnist", tmp_path, smoke=True)
    assert data.sizes == (SMOKE_TRAIN, SMOKE_TEST)
    np.testing.assert_array_equal(data.train_images, patterned_split(1200, 0)[0][:SMOKE_TRAIN])


def test_load_datasets_reads_each_once(tiny_data):
    found = load_datasets(["mnist", "mnist", "fashion-mnist"], tiny_data)
    assert list(found) == ["mnist", "fashion-mnist"]
