"""The filesystem a resumed Tune reads through: it reads only the bytes verified."""

import pickle

import pyarrow.fs
import pytest

from tune_mnist.errors import TuneMnistError
from tune_mnist.store.verified_fs import VerifiedFiles, verified_digests


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / "run"
    (folder / "trial_0").mkdir(parents=True)
    (folder / "tuner.pkl").write_bytes(b"tuner")
    (folder / "experiment_state-1.json").write_text("{}")
    (folder / "trial_0" / "error.pkl").write_bytes(b"error")
    (folder / "trial_0" / "result.json").write_text("{}")
    return folder


def read(fs, path) -> bytes:
    with fs.open_input_stream(str(path)) as f:
        return f.readall()


def test_the_digests_cover_what_resuming_reads_and_nothing_else(run):
    assert sorted(verified_digests(run)) == [
        "experiment_state-1.json",
        "trial_0/error.pkl",
        "tuner.pkl",
    ]


def test_verified_bytes_are_read_and_changed_or_added_ones_refused(run):
    fs, root = VerifiedFiles.over(str(run), run)
    assert root == str(run)
    assert read(fs, run / "tuner.pkl") == b"tuner"
    with fs.open_input_file(str(run / "trial_0" / "error.pkl")) as f:
        assert f.read() == b"error"

    (run / "tuner.pkl").write_bytes(b"swapped")
    (run / "experiment_state-9.json").write_text("{}")
    for name in ("tuner.pkl", "experiment_state-9.json"):
        with pytest.raises(TuneMnistError, match="changed after it was verified"):
            read(fs, run / name)
    # files resuming does not read pass through, whatever they hold
    (run / "trial_0" / "result.json").write_text('{"changed": 1}')
    assert read(fs, run / "trial_0" / "result.json") == b'{"changed": 1}'


def test_what_this_process_writes_through_it_reads_back(run):
    fs, _ = VerifiedFiles.over(str(run), run)
    with fs.open_output_stream(str(run / "experiment_state-2.json")) as f:
        f.write(b'{"new": 1}')
    assert read(fs, run / "experiment_state-2.json") == b'{"new": 1}'
    (run / "experiment_state-2.json").write_text('{"new": 2}')  # not by this process
    with pytest.raises(TuneMnistError):
        read(fs, run / "experiment_state-2.json")


def test_it_travels_to_workers_without_its_filesystem(run):
    fs, _ = VerifiedFiles.over(str(run), run)
    state = fs.handler.__getstate__()
    assert state == {"uri": str(run), "digests": verified_digests(run)}
    copy = pickle.loads(pickle.dumps(fs))
    assert isinstance(copy, pyarrow.fs.PyFileSystem)
    (run / "tuner.pkl").write_bytes(b"swapped")
    with pytest.raises(TuneMnistError):
        read(copy, run / "tuner.pkl")
