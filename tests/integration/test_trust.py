"""Signed experiments: resume refuses pickled files this user's sweeps did not write."""

import json
import os
import pickle
import shutil
import stat
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import TINY_SVM, write_space
from tests.experiments import make_experiment
from tune_mnist.cli.main import app
from tune_mnist.run.sweep import SweepSettings, run_sweep
from tune_mnist.spec.spaces import load_space, parse_space
from tune_mnist.store.experiment import META_FILE
from tune_mnist.store.trust import KEPT, SIGNATURES, Signer, key_path, untrusted_files

SPACE = {
    "name": "t",
    "trainable": "svm",
    "fixed": {"dataset": "mnist", "train_samples": 50},
    "grid": {"kernel": ["rbf"]},
}


def sign_all(folder):
    """Sign every file of a folder, as the sweep that wrote them would have."""
    Signer(folder).sign_copy(folder)


class Payload:
    """A pickle that, if ever unpickled, leaves a file behind."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def tune_like_folder(tmp_path):
    """An experiment folder with the files Ray Tune would unpickle on resume."""
    folder = make_experiment(tmp_path / "exp", parse_space(SPACE, "t.yaml"), lambda t: 90.0)
    (folder / "tuner.pkl").write_bytes(pickle.dumps({"run_config": 1}))
    (folder / "experiment_state-2026.json").write_text('{"trial_data": []}')
    trial = next(p for p in folder.iterdir() if p.is_dir())
    (trial / "params.pkl").write_bytes(pickle.dumps({"C": 1.0}))
    return folder, trial


def test_a_signed_folder_is_trusted_and_any_change_or_addition_is_not(tmp_path):
    folder, trial = tune_like_folder(tmp_path)
    assert untrusted_files(folder) == sorted(
        ["experiment_state-2026.json", "tune_mnist.json", "tuner.pkl", f"{trial.name}/params.pkl"]
    )
    sign_all(folder)
    assert untrusted_files(folder) == []
    assert stat.S_IMODE(key_path().stat().st_mode) == 0o600  # the key is the owner's alone

    (folder / "tuner.pkl").write_bytes(pickle.dumps({"run_config": 2}))
    (trial / "error.pkl").write_bytes(b"x")
    assert sorted(untrusted_files(folder)) == sorted(["tuner.pkl", f"{trial.name}/error.pkl"])
    # a signature copied onto another name does not carry over
    os.replace(folder / "experiment_state-2026.json", folder / "experiment_state-2027.json")
    assert "experiment_state-2027.json" in untrusted_files(folder)


def test_another_users_key_or_a_forged_signature_file_is_not_trusted(tmp_path, monkeypatch):
    folder, _ = tune_like_folder(tmp_path)
    sign_all(folder)
    mine = os.environ["TUNE_MNIST_CONFIG_DIR"]
    monkeypatch.setenv("TUNE_MNIST_CONFIG_DIR", str(tmp_path / "someone-else"))
    assert "tuner.pkl" in untrusted_files(folder)  # no key here: nothing is trusted
    (folder / "tuner.pkl").write_bytes(pickle.dumps("changed"))
    sign_all(folder)  # the other user signs a change with their own key...
    monkeypatch.setenv("TUNE_MNIST_CONFIG_DIR", mine)
    assert "tuner.pkl" in untrusted_files(folder)  # ...which this user's key does not accept
    (folder / SIGNATURES).write_text("not json")
    assert "tuner.pkl" in untrusted_files(folder)


def test_a_folder_that_lags_the_newest_signed_state_is_still_trusted(tmp_path):
    """Tune copies its state in a background thread: the folder may hold an older version
    than the one signed last (from Tune's staging copy), within the last KEPT."""
    folder, _ = tune_like_folder(tmp_path)
    staging = tmp_path / "staging"
    staging.mkdir()
    (folder / "tuner.pkl").write_bytes(pickle.dumps(0))
    signer = Signer(folder)
    for version in range(KEPT):  # versions 0 .. KEPT-1 signed from staging
        (staging / "tuner.pkl").write_bytes(pickle.dumps(version))
        signer.sign_copy(staging)
    assert "tuner.pkl" not in untrusted_files(folder)  # holds version 0, KEPT versions back
    (staging / "tuner.pkl").write_bytes(pickle.dumps(KEPT))
    signer.sign_copy(staging)
    assert "tuner.pkl" in untrusted_files(folder)  # version 0 is no longer among the kept


def test_resume_refuses_a_tampered_tuner_pickle_without_running_it(tmp_path):
    folder, _ = tune_like_folder(tmp_path)
    sign_all(folder)
    marker = tmp_path / "payload-ran"
    (folder / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))

    result = CliRunner().invoke(app, ["resume", str(folder)])

    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert message.count("\n") == 0 and "Traceback" not in message
    assert "tuner.pkl not signed by this user's tune-mnist" in message and "--trust" in message
    assert not marker.exists()


def test_resume_refuses_edited_metadata_before_importing_what_it_names(tmp_path):
    """tune_mnist.json names the model files a resume imports: an edit there is refused
    as a changed pickle is, before anything is imported or contacted."""
    spec = parse_space(
        {
            "name": "r",
            "trainable": "resnet",
            "fixed": {
                "dataset": "mnist",
                "model": "resnet18",
                "epochs": 1,
                "batch_size": 16,
                "optimizer": "adam",
                "pin_memory": False,
            },
            "grid": {"lr": [0.001]},
        },
        "r.yaml",
    )
    # smoke: the bundled sample is there, so nothing but the signature check stops it
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0, skip={0}, smoke=True)
    (folder / "tuner.pkl").write_bytes(pickle.dumps({}))
    sign_all(folder)
    marker = tmp_path / "payload-ran"
    payload = tmp_path / "payload.py"
    payload.write_text(
        f"open({str(marker)!r}, 'w').close()\n\ndef build(c, h, w, k):\n    return None\n"
    )
    meta = json.loads((folder / META_FILE).read_text())
    meta["trials"][0]["model"] = f"{payload}:build"
    (folder / META_FILE).write_text(json.dumps(meta))

    result = CliRunner().invoke(app, ["resume", str(folder)])

    assert result.exit_code == 1, result.output
    assert "tune_mnist.json not signed by this user's tune-mnist" in result.output
    assert not marker.exists()


def test_summarize_suggests_resume_only_for_a_signed_folder(tmp_path):
    spec = parse_space({**SPACE, "grid": {"kernel": ["rbf", "poly"]}}, "t.yaml")
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0, skip={1})
    (folder / "tuner.pkl").write_bytes(pickle.dumps({}))

    unsigned = CliRunner().invoke(app, ["summarize", str(folder)])
    assert unsigned.exit_code == 3
    assert "continue with" not in unsigned.output
    assert "refuses it unless told --trust" in unsigned.output

    sign_all(folder)
    signed = CliRunner().invoke(app, ["summarize", str(folder)])
    assert f"continue with `tune-mnist resume {folder}`" in signed.output


def test_each_save_is_signed_before_tune_starts_copying_it(
    local_ray, tiny_data, tmp_path, monkeypatch
):
    """The copy from Tune's staging folder runs in the background; a driver killed once it
    has finished but before the save was signed would leave a folder resume refuses."""
    from ray.train._internal.storage import _FilesystemSyncer

    launches = []  # per copy Tune started: the staged files not yet signed in the experiment
    copy = _FilesystemSyncer.sync_up

    def check_then_copy(self, local_dir, remote_dir, exclude=None):
        seen = tmp_path / f"launch-{len(launches)}"
        shutil.copytree(local_dir, seen)
        signatures = Path(remote_dir) / SIGNATURES
        if signatures.is_file():
            shutil.copy(signatures, seen / SIGNATURES)
        launches.append(untrusted_files(seen))
        return copy(self, local_dir, remote_dir, exclude)

    monkeypatch.setattr(_FilesystemSyncer, "sync_up", check_then_copy)
    spec = load_space(write_space(tmp_path, **TINY_SVM))
    settings = SweepSettings(data_dir=str(tiny_data), storage_path=str(tmp_path / "results"))
    result = run_sweep(spec, settings)
    assert result.summary.complete
    assert len(launches) >= 3, launches
    # the first save comes before any trial shows where Tune stages: signed after its step
    assert launches[1:] == [[]] * (len(launches) - 1), launches
    assert untrusted_files(result.experiment_dir) == []


def test_reading_a_folder_someone_sent_imports_and_unpickles_nothing(tmp_path):
    """summarize, status and best on an unsigned folder whose pickles are payloads: each
    reads the folder, none unpickles them."""
    spec = parse_space({**SPACE, "trainable": "svm", "grid": {"kernel": ["rbf", "poly"]}}, "t.yaml")
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0)
    marker = tmp_path / "payload-ran"
    (folder / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))
    trial = next(p for p in folder.iterdir() if p.is_dir())
    (trial / "error.pkl").write_bytes(pickle.dumps(Payload(marker)))
    for command in (["summarize", str(folder)], ["status", str(folder)], ["best", str(folder)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 0, result.output
        assert not marker.exists(), command


def test_a_new_sweep_refuses_files_it_did_not_write_and_signs_none_of_them(tmp_path):
    """A state file planted where a new sweep will write (a shared prefix) would be signed
    by the sweep as its own, and unpickled by a later resume: it is refused first."""
    storage = tmp_path / "runs"
    planted = storage / "t" / "experiment_state-9999-12-31_00-00-00.json"
    planted.parent.mkdir(parents=True)
    planted.write_text('{"trial_data": []}')
    space = write_space(tmp_path, name="t", **TINY_SVM)
    result = CliRunner().invoke(app, ["sweep", str(space), "--storage-path", str(storage)])
    assert result.exit_code == 1, result.output
    assert "holds files this user's tune-mnist did not write" in result.output
    assert planted.name in result.output
    assert not (storage / "t" / SIGNATURES).exists()


def test_a_file_planted_during_a_run_is_never_signed(local_ray, tiny_data, tmp_path):
    """A sweep signs what it wrote, not what it finds: files planted in its folder while it
    runs (a shared prefix) stay unsigned, and a resume refuses them."""
    import threading
    import time

    storage = tmp_path / "results"
    folder = storage / "tiny"
    planted = []

    def plant():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (folder / "tuner.pkl").is_file():
            time.sleep(0.01)
        state = folder / "experiment_state-9999-12-31_00-00-00.json"
        state.write_text('{"trial_data": []}')
        planted.append(state.name)
        while time.monotonic() < deadline:
            trials = [p for p in folder.iterdir() if (p / "params.json").is_file()]
            if trials:
                (trials[0] / "error.pkl").write_bytes(pickle.dumps("planted"))
                planted.append(f"{trials[0].name}/error.pkl")
                return
            time.sleep(0.01)

    planter = threading.Thread(target=plant)
    planter.start()
    spec = load_space(write_space(tmp_path, **TINY_SVM))
    settings = SweepSettings(data_dir=str(tiny_data), storage_path=str(storage))
    result = run_sweep(spec, settings)
    planter.join()

    assert result.summary.complete and len(planted) == 2, planted
    assert untrusted_files(folder) == sorted(planted)
    refused = CliRunner().invoke(app, ["resume", str(folder)])
    assert refused.exit_code == 1, refused.output
    assert "not signed by this user's tune-mnist" in refused.output
    assert planted[0] in refused.output or planted[1] in refused.output


def test_a_file_swapped_after_the_check_is_refused_where_tune_reads_it(
    local_ray, tiny_data, tmp_path, monkeypatch
):
    """The check reads the folder before Ray starts; Tune reads it again later. A pickle
    swapped in between (the race an attacker with write access would run) is refused on
    the bytes Tune reads, and never unpickled."""
    from tune_mnist.store.verified_fs import VerifiedFiles

    spec = load_space(write_space(tmp_path, **TINY_SVM))
    settings = SweepSettings(data_dir=str(tiny_data), storage_path=str(tmp_path / "results"))
    folder = run_sweep(spec, settings).experiment_dir
    assert untrusted_files(folder) == []
    marker = tmp_path / "payload-ran"
    over = VerifiedFiles.over

    def swap_after_the_check(uri, run_folder):
        checked = over(uri, run_folder)
        (Path(run_folder) / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))
        return checked

    monkeypatch.setattr(VerifiedFiles, "over", staticmethod(swap_after_the_check))
    result = CliRunner().invoke(app, ["resume", str(folder)])

    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert "tuner.pkl: changed after it was verified" in message, result.output
    assert "Traceback" not in result.output
    assert not marker.exists()
