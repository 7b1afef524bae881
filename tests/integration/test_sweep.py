"""Sweeps on a real local Ray (2 CPUs), tiny data."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tune_mnist import load_epochs, load_results, load_space
from tune_mnist.errors import TuneMnistError
from tune_mnist.run.sweep import SweepSettings, run_sweep
from tune_mnist.run.trainables import load_state

from ..conftest import TINY_RESNET, TINY_SVM, TINY_TEST, write_space


@pytest.fixture(scope="module")
def resnet_sweep(local_ray, tiny_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    spec = load_space(write_space(folder, **TINY_RESNET))
    settings = SweepSettings(data_dir=str(tiny_data), storage_path=str(folder / "results"))
    events = []
    return run_sweep(spec, settings, on_event=events.append), settings, spec, events


def test_every_trial_finishes_with_its_metrics(resnet_sweep):
    result, _, _, events = resnet_sweep
    frame = result.results
    assert len(frame) == 2 and set(frame["status"]) == {"finished"}
    assert sorted(frame["batch_size"]) == [32, 48]
    assert (frame["epoch"] == 2).all()
    assert frame["test_accuracy"].between(0, 100).all()
    assert (frame["train_time_ms"] > 0).all()
    assert frame["params_m"].round(2).tolist() == [11.18, 11.18]
    assert frame["gflops"].round(4).tolist() == [0.0332, 0.0332]
    assert (frame["assigned_cpus"] == 1).all() and (frame["assigned_gpus"] == 0).all()
    assert result.resources == {"resnet": {"cpu": 1.0}}  # no GPUs: ResNets ask for a CPU
    assert any(e.startswith("[2/2] mnist/resnet18") for e in events)


def test_train_time_is_the_sum_of_the_epochs(resnet_sweep):
    result, *_ = resnet_sweep
    epochs = load_epochs(result.experiment_dir)
    assert len(epochs) == 4
    summed = epochs.groupby("batch_size")["epoch_seconds"].sum() * 1000
    final = result.results.set_index("batch_size")["train_time_ms"]
    assert final.to_dict() == pytest.approx(summed.to_dict())


def test_checkpoints_every_epoch_keeps_the_latest_two(resnet_sweep):
    result, *_ = resnet_sweep
    for trial_dir in result.results["trial_dir"]:
        checkpoints = sorted(p.name for p in Path(trial_dir).glob("checkpoint_*"))
        assert checkpoints == ["checkpoint_000000", "checkpoint_000001"]
        first, last = (load_state(Path(trial_dir) / name) for name in checkpoints)
        # epoch 1 can be trained on from; the finished trial's last keeps the model only
        assert first["epoch"] == 1 and first["optimizer"]["state"]
        assert last["epoch"] == 2 and last["optimizer"] is None
        assert last["model"].keys() == first["model"].keys()
        assert len(last["history"]) == 2 and len(last["predicted"]) == TINY_TEST


def test_provenance_and_tables_are_written(resnet_sweep):
    result, *_ = resnet_sweep
    meta = json.loads((result.experiment_dir / "tune_mnist.json").read_text())
    assert meta["space"]["name"] == "tiny" and len(meta["trials"]) == 2
    assert meta["smoke"] is False and meta["versions"]["torch"]
    markdown = (result.experiment_dir / "report" / "tables.md").read_text()
    assert markdown.startswith("## The answer\n\ntiny: 2 of 2 trials finished, on 96 train / 40 ")
    assert markdown.split("\n## ")[1].startswith("tiny: model comparison")
    assert (result.experiment_dir / "report" / "tiny.csv").is_file()


def test_load_results_reads_the_folder_without_ray(resnet_sweep):
    result, *_ = resnet_sweep
    again = load_results(result.experiment_dir)
    assert again[["label", "test_accuracy"]].equals(result.results[["label", "test_accuracy"]])


def test_a_second_sweep_into_the_same_folder_is_refused(resnet_sweep):
    _, settings, spec, _ = resnet_sweep
    with pytest.raises(TuneMnistError, match="already holds an experiment: add --resume"):
        run_sweep(spec, settings)


def test_resume_of_a_finished_sweep_trains_nothing(resnet_sweep):
    result, settings, spec, _ = resnet_sweep
    lines = {
        d: len((Path(d) / "result.json").read_text().splitlines())
        for d in result.results["trial_dir"]
    }
    settings = SweepSettings(**{**settings.__dict__, "resume": True})
    resumed = run_sweep(spec, settings)
    assert set(resumed.results["status"]) == {"finished"}
    assert {d: len((Path(d) / "result.json").read_text().splitlines()) for d in lines} == lines


def test_resume_with_nothing_to_resume(local_ray, tmp_path, tiny_data):
    spec = load_space(write_space(tmp_path, **TINY_RESNET))
    settings = SweepSettings(data_dir=str(tiny_data), resume=True, name="never-ran")
    with pytest.raises(TuneMnistError, match=r"--resume: no tune-mnist experiment at .*never-ran"):
        run_sweep(spec, settings)


def test_svm_sweep_on_cpu(local_ray, tmp_path, tiny_data):
    spec = load_space(write_space(tmp_path, **TINY_SVM))
    result = run_sweep(spec, SweepSettings(data_dir=str(tiny_data), svm_cpus=1))
    frame = result.results
    assert len(frame) == 4 and set(frame["status"]) == {"finished"}
    assert (frame["test_accuracy"] > 90).all()
    assert (frame["train_samples"] == 80).all()
    assert (frame["assigned_gpus"] == 0).all() and (frame["assigned_cpus"] == 1).all()
    table = result.summary.tables[0].frame
    assert table.columns.tolist() == [
        "#",
        "dataset",
        "kernel",
        "train samples",
        "test accuracy (%)",
        "training time (ms)",
        "95% CI",
        "vs best",
    ]


def test_an_svm_sweeps_driver_never_loads_torch(tmp_path, tiny_data):
    """q1b's driver spent 2-5 s of 2 cores importing torch that no SVM trial uses: once for
    FLOPs and devices, once through Tune's TensorBoard logger (tensorboardX imports it).
    The report's libraries (statistics, matplotlib: 2.5 s) are not imported at the start
    but once the last trials leave a CPU idle, before the report that needs them.
    The garbage collector is off while Ray stops beside the report (see _run_sweep)."""
    space = write_space(tmp_path, **TINY_SVM)
    argv = ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", str(tmp_path)]
    code = (
        "import sys\n"
        "from tune_mnist import sweep\n"
        "from tune_mnist.cli.main import app\n"
        "print('statistics at the start:', {'statsmodels', 'scipy.stats'} & set(sys.modules))\n"
        "report = sweep._timed_summary\n"
        "def spy(*args):\n"
        "    args[1].result()  # the imports the report waits for\n"
        "    print('matplotlib before the report:', 'matplotlib' in sys.modules)\n"
        "    print('statsmodels before the report:', 'statsmodels' in sys.modules)\n"
        "    return report(*args)\n"
        "sweep._timed_summary = spy\n"
        "import gc, ray\n"
        "stop = ray.shutdown\n"
        "def stopping(*args, **kwargs):\n"
        "    print('collector on while Ray stops:', gc.isenabled())\n"
        "    return stop(*args, **kwargs)\n"
        "ray.shutdown = stopping\n"
        "fit = ray.tune.Tuner.fit\n"
        "def fitting(self):\n"
        "    loaded = 'ray.air.integrations.mlflow' in sys.modules\n"
        "    print('Tune usage imports before fit:', loaded)\n"
        "    return fit(self)\n"
        "ray.tune.Tuner.fit = fitting\n"
        f"app({argv!r}, standalone_mode=False)\n"
        "print('collector on after the sweep:', gc.isenabled())\n"
        "print('torch loaded:', 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "torch loaded: False"
    lines = done.stdout.splitlines()
    assert "statistics at the start: set()" in lines
    assert "matplotlib before the report: True" in lines
    assert "statsmodels before the report: True" in lines
    # Tune's garbage holds Ray handles: none is freed in the report's thread as Ray stops
    assert "collector on while Ray stops: False" in lines
    assert "collector on after the sweep: True" in lines
    # what Ray Tune imports as fit starts was imported while Ray started
    assert "Tune usage imports before fit: True" in lines
    trials = [p.parent for p in (tmp_path / "tiny").glob("*/params.json")]
    assert len(trials) == 4  # and Tune still wrote each trial's TensorBoard events
    assert all(list(folder.glob("events.out.tfevents.*")) for folder in trials)


def test_older_experiments_name_the_progress_callback_in_sweep():
    """tuner.pkl of experiments from before progress.py pickled tune_mnist.sweep.Progress."""
    import pickle

    from tune_mnist.run.progress import Progress

    old = pickle.dumps(Progress(), protocol=0).replace(
        b"tune_mnist.run.progress", b"tune_mnist.sweep"
    )
    assert b"tune_mnist.sweep\n" in old
    assert type(pickle.loads(old)) is Progress
