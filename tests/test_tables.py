"""The study tables and their notes, from experiment folders made without Ray."""

import pytest

from tune_mnist.report import summarize
from tune_mnist.spaces import load_space, with_repeats

from .conftest import write_space
from .experiments import COMPARE, make_experiment


def test_repeats_give_mean_std_n_interval_and_marks(repeated):
    table = summarize(repeated).tables[0].frame.set_index("model")
    assert table.loc["ResNet-18", "test accuracy (%)"] == 91.0
    assert table.loc["ResNet-18", "± std"] == 1.0
    assert table.loc["ResNet-18", "n"] == 3
    assert table.loc["ResNet-18", "95% CI"] == "[88.52, 93.48]"  # 91 ± 4.303 * 1 / sqrt(3)
    assert table.loc["ResNet-18", "vs best"] == "best"
    assert table.loc["ResNet-50", "vs best"] == "lower"
    assert table.loc["ResNet-18", "train time (ms)"] == 4000
    assert table.loc["ResNet-18", "FLOPs (GFLOPs)"] == 0.0332


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
        make_experiment(tmp_path / "exp", spec, lambda t: 90.0 + t.seed + (t.model == "resnet50"))
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


def test_smoke_reports_say_so_in_every_title(tmp_path):
    spec = load_space(write_space(tmp_path, name="cmp", **COMPARE))
    summary = summarize(make_experiment(tmp_path / "exp", spec, lambda t: 90.0, smoke=True))
    assert all("SMOKE RUN" in t.title for t in summary.tables)


@pytest.mark.parametrize(
    ("device", "preload", "said"),
    [
        ("cpu", False, "every trial trained on the CPU"),
        ("cuda", True, "the datasets were preloaded on the GPU"),
        ("cuda", False, None),
    ],
)
def test_tables_say_when_pin_memory_could_not_matter(tmp_path, device, preload, said):
    spec = load_space(write_space(tmp_path, name="cmp", **COMPARE))
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0, device=device, preload=preload)
    for table in summarize(folder).tables:
        notes = " ".join(table.notes)
        if said and not table.name.endswith("-compute"):
            assert f"pin_memory had no effect: {said}" in notes
        else:
            assert "pin_memory had no effect" not in notes
