"""Reports from hand-made experiment folders (the layout Ray Tune writes), no Ray needed."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tune_mnist import load_epochs, load_results
from tune_mnist.cli import app
from tune_mnist.plots import pareto_front, plot_experiment
from tune_mnist.report import summarize
from tune_mnist.spaces import load_space, parse_space, with_repeats

from .conftest import write_space


def make_experiment(
    folder: Path, spec, accuracy, smoke=False, skip=(), device="cpu", settings=None
) -> Path:
    """An experiment as a sweep leaves it: tune_mnist.json plus one folder per trial.

    `accuracy(trial)` gives each trial's final test accuracy; epochs report linearly up to it.
    Trials whose index is in `skip` get no folder (pending).
    """
    folder.mkdir(parents=True)
    meta = {
        "space": spec.space.model_dump(),
        "space_source": spec.source,
        "report": spec.report,
        "trials": spec.trials,
        "smoke": smoke,
        "settings": settings or {},
        "data": {
            "mnist": {"source": "x", "train": 100, "test": 50},
            "fashion-mnist": {"source": "x", "train": 100, "test": 50},
        },
    }
    (folder / "tune_mnist.json").write_text(json.dumps(meta))
    for i, trial in enumerate(spec.trials):
        if i in skip:
            continue
        trial_dir = folder / f"t{i:03d}"
        trial_dir.mkdir()
        (trial_dir / "params.json").write_text(json.dumps({"trial": trial, "options": {}}))
        final = accuracy(trial)
        epochs = trial.get("epochs", 1)
        reports = [
            {
                "epoch": e,
                "test_accuracy": final * e / epochs,
                "epoch_seconds": 2.0,
                "train_time_ms": 2000.0 * e,
                "assigned_gpus": 0.25,
                "assigned_cpus": 0.0,
                "gflops": 0.0331,
                "params_m": 11.18,
                "device": device,
                "trial_finished": e == epochs,
            }
            for e in range(1, epochs + 1)
        ]
        (trial_dir / "result.json").write_text("\n".join(json.dumps(r) for r in reports))
    return folder


COMPARE = {
    "trainable": "resnet",
    "fixed": {
        "dataset": "fashion-mnist",
        "optimizer": "adam",
        "lr": 0.001,
        "epochs": 2,
        "pin_memory": False,
        "batch_size": 16,
    },
    "grid": {"model": ["resnet18", "resnet50"]},
    "repeats": 3,
}


@pytest.fixture
def repeated(tmp_path):
    spec = load_space(write_space(tmp_path, name="cmp", **COMPARE))
    # resnet18: 90, 91, 92 (seeds 0-2); resnet50: 80, 80.5, 81
    acc = {("resnet18", s): 90.0 + s for s in range(3)} | {
        ("resnet50", s): 80.0 + s / 2 for s in range(3)
    }
    return make_experiment(tmp_path / "exp", spec, lambda t: acc[(t["model"], t["seed"])])


def test_repeats_give_mean_std_n_interval_and_marks(repeated):
    table = summarize(repeated).tables[0].frame.set_index("model")
    assert table.loc["ResNet-18", "test accuracy (%)"] == 91.0
    assert table.loc["ResNet-18", "± std"] == 1.0
    assert table.loc["ResNet-18", "n"] == 3
    assert table.loc["ResNet-18", "95% CI"] == "[88.52, 93.48]"  # 91 ± 4.303 * 1 / sqrt(3)
    assert table.loc["ResNet-18", "vs best"] == "best"
    assert table.loc["ResNet-50", "vs best"] == "lower"
    assert table.loc["ResNet-18", "train time (ms)"] == 4000
    assert table.loc["ResNet-18", "FLOPs (GFLOPs)"] == 0.0331


def test_single_runs_look_like_the_study(tmp_path):
    spec = load_space(write_space(tmp_path, name="cmp", **{**COMPARE, "repeats": 1}))
    summary = summarize(make_experiment(tmp_path / "exp", spec, lambda t: 90.0))
    table = summary.tables[0]
    assert table.frame.columns.tolist() == [
        "model",
        "batch size",
        "optimizer",
        "LR",
        "epochs",
        "pin_memory",
        "test accuracy (%)",
        "train time (ms)",
        "FLOPs (GFLOPs)",
        "params (M)",
    ]
    assert "cannot be told from seed-to-seed noise" in " ".join(table.notes)


def test_q1a_with_repeats_pairs_the_two_models_per_row(tmp_path):
    spec = with_repeats(load_space("q1a"), 2)
    # resnet50 beats resnet18 by exactly 1 point on every seed and row
    summary = summarize(
        make_experiment(
            tmp_path / "exp", spec, lambda t: 90.0 + t["seed"] + (t["model"] == "resnet50")
        )
    )
    mnist = summary.tables[0]
    assert mnist.name == "q1a-mnist" and len(mnist.frame) == 8
    assert (mnist.frame["ResNet-50 - ResNet-18 (pp)"] == 1.0).all()
    assert (mnist.frame["p (paired t)"] == 0.0).all()
    assert (mnist.frame["ResNet-18 acc (%)"] == 90.5).all()
    effects = next(t for t in summary.tables if t.name == "q1a-effects-mnist")
    assert "lr and epochs always change together" in " ".join(effects.notes)
    assert "epochs" not in set(effects.frame["factor"])
    model_effect = effects.frame[effects.frame["level"] == "resnet50 - resnet18"]
    assert model_effect["mean test accuracy (%)"].item() == 1.0


def test_compute_is_accounted_per_trial_and_summed(repeated):
    results = load_results(repeated)
    first = results.iloc[0]
    assert first["gpu_seconds"] == pytest.approx(4.0 * 0.25)
    assert first["images_seen"] == 200  # 100 training images x 2 epochs
    assert first["train_pflops_est"] == pytest.approx(3 * 0.0331 * 200 / 1e6)
    compute = next(t for t in summarize(repeated, write=False).tables if t.name == "cmp-compute")
    total = compute.frame.iloc[-1]
    assert total["dataset"] == "all" and total["trials"] == 6
    assert total["GPU-seconds"] == pytest.approx(6.0)


def test_every_export_format_is_written_and_reads_back(repeated):
    summary = summarize(repeated)
    folder = repeated / "report"
    assert (folder / "tables.md").read_text().startswith("## cmp: model comparison")
    table = summary.tables[0].frame
    pd.testing.assert_frame_equal(pd.read_csv(folder / "cmp.csv"), table, check_dtype=False)
    assert pd.read_json(folder / "cmp.json")["n"].tolist() == [3, 3]
    assert pd.read_parquet(folder / "cmp.parquet")["test accuracy (%)"].tolist() == [91.0, 80.5]
    assert len(pd.read_parquet(folder / "epochs.parquet")) == 12
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["space"]["name"] == "cmp" and provenance["devices_used"] == ["cpu"]


def test_summarize_format_option_writes_only_that_format(repeated):
    result = CliRunner().invoke(app, ["summarize", str(repeated), "--format", "csv"])
    assert result.exit_code == 0, result.output
    written = {p.suffix for p in (repeated / "report").iterdir()}
    assert written == {".csv", ".json"}  # the CSVs, and provenance.json always


def test_smoke_reports_say_so_in_every_title(tmp_path):
    spec = load_space(write_space(tmp_path, name="cmp", **COMPARE))
    summary = summarize(make_experiment(tmp_path / "exp", spec, lambda t: 90.0, smoke=True))
    assert all("SMOKE RUN" in t.title for t in summary.tables)


@pytest.mark.parametrize(
    ("device", "settings", "said"),
    [
        ("cpu", None, "every trial trained on the CPU"),
        ("cuda", {"options": {"preload": True}}, "the datasets were preloaded on the GPU"),
        ("cuda", {"options": {"preload": False}}, None),
    ],
)
def test_tables_say_when_pin_memory_could_not_matter(tmp_path, device, settings, said):
    spec = load_space(write_space(tmp_path, name="cmp", **COMPARE))
    folder = make_experiment(
        tmp_path / "exp", spec, lambda t: 90.0, device=device, settings=settings
    )
    for table in summarize(folder).tables:
        notes = " ".join(table.notes)
        if said and not table.name.endswith("-compute"):
            assert f"pin_memory had no effect: {said}" in notes
        else:
            assert "pin_memory had no effect" not in notes


def test_pending_trials_are_listed_not_counted(tmp_path):
    spec = load_space(write_space(tmp_path, name="cmp", **COMPARE))
    summary = summarize(make_experiment(tmp_path / "exp", spec, lambda t: 90.0, skip={0, 1}))
    assert not summary.complete and summary.incomplete["status"].tolist() == ["pending", "pending"]
    assert summary.tables[0].frame.set_index("model").loc["ResNet-18", "n"] == 1


def test_load_epochs_one_row_per_trial_and_epoch(repeated):
    epochs = load_epochs(repeated)
    assert len(epochs) == 12 and sorted(epochs["epoch"].unique()) == [1, 2]


def test_plots_are_pngs_with_the_space_name(repeated):
    paths = plot_experiment(repeated)
    assert [p.name for p in paths] == [
        "cmp-accuracy-vs-time.png",
        "cmp-learning-curves.png",
        "cmp-main-effects.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_pareto_front():
    frame = pd.DataFrame({"s": [1, 2, 3, 4], "acc": [50, 40, 70, 60]})
    assert pareto_front(frame, "s", "acc")["s"].tolist() == [1, 3]


def test_repeats_in_a_space_file_expand_the_seeds():
    spec = parse_space(
        {
            "name": "r",
            "trainable": "svm",
            "repeats": 3,
            "fixed": {"seed": 5},
            "grid": {"dataset": ["mnist"], "kernel": ["rbf"]},
        }
    )
    assert [t["seed"] for t in spec.trials] == [5, 6, 7]
