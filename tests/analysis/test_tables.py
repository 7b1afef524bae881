"""The report's tables from experiment folders made without Ray: every number checked
against an answer computed here independently (scipy, statsmodels), every mark against
the decision the named test makes."""

import json
import re
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from tune_mnist.analysis.report import summarize
from tune_mnist.analysis.study import CANNOT_TELL
from tune_mnist.analysis.table import CLASS_NAMES
from tune_mnist.spec.reference import builtin_reference
from tune_mnist.spec.selection import select
from tune_mnist.spec.spaces import load_space, with_repeats

from ..conftest import write_space
from ..experiments import COMPARE, DATA, make_experiment, write_predictions

TEST_IMAGES = DATA["fashion-mnist"].test  # 50: the test set of every made experiment
LABELS = np.arange(TEST_IMAGES) % 10  # five test images per class
THREE_MODELS = {**COMPARE, "grid": {"model": ["resnet18", "resnet34", "resnet50"]}}
INERT_CPU = "pin_memory could not act: every trial trained on the CPU, where nothing is pinned."
INERT_SMOKE_EPOCHS = "epochs could not act: every trial trained 1 epoch(s) (--smoke)."


def ci_text(low: float, high: float) -> str:
    return f"[{low:.2f}, {high:.2f}]"


def t_ci(values) -> str:
    """95% Student t-interval of the mean, as the tables print it."""
    values = np.asarray(values, dtype=float)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return ci_text(low, high)


def wilson_ci(right: int, total: int = TEST_IMAGES) -> str:
    low, high = proportion_confint(right, total, alpha=0.05, method="wilson")
    return ci_text(100 * low, 100 * high)


def predicted_with_errors(wrong) -> np.ndarray:
    """Predictions on the test images, wrong exactly on the images listed."""
    predicted = LABELS.copy()
    predicted[list(wrong)] = (LABELS[list(wrong)] + 1) % 10
    return predicted


def exact_mcnemar_p(correct_a, correct_b) -> float:
    """Exact McNemar: a two-sided binomial test on the discordant images."""
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    if only_a + only_b == 0:
        return 1.0
    return stats.binomtest(only_a, only_a + only_b, 0.5).pvalue


def p_in_mark(mark: str) -> float:
    """The p-value a `vs best` mark quotes, e.g. "worse (p = 0.023)" -> 0.02."""
    found = re.search(r"\(p ([=<]) ([0-9.]+)\)", mark)
    assert found, mark
    return float(found.group(2))


def table(summary, name):
    return next(t for t in summary.tables if t.name == name)


def notes_of(summary) -> list[str]:
    return [note for t in summary.tables for note in t.notes]


# ------------------------------------------------------------------ repeats


def test_repeats_give_mean_std_n_t_interval_and_dunnett_marks(repeated):
    summary = summarize(repeated, write=False)
    frame = summary.tables[0].frame
    assert frame.columns.tolist() == [
        "#",
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
        "± std",
        "n",
        "95% CI",
        "time ± std (ms)",
        "vs best",
    ]
    rows = frame.set_index("model")
    r18, r50 = [90.0, 91.0, 92.0], [80.0, 80.5, 81.0]
    assert rows["#"].tolist() == [1, 2]
    for name, seeds in (("ResNet-18", r18), ("ResNet-50", r50)):
        assert rows.loc[name, "test accuracy (%)"] == pytest.approx(np.mean(seeds))
        assert rows.loc[name, "± std"] == pytest.approx(round(np.std(seeds, ddof=1), 2))
        assert rows.loc[name, "n"] == 3
        assert rows.loc[name, "95% CI"] == t_ci(seeds)
        assert rows.loc[name, "train time (ms)"] == "4,000"  # 2 epochs x 2,000 ms, no overlap
        assert rows.loc[name, "time ± std (ms)"] == "0"
    assert rows.loc["ResNet-18", "FLOPs (GFLOPs)"] == 0.0332
    assert rows.loc["ResNet-18", "params (M)"] == 11.18
    # Dunnett's test of ResNet-50 against the best (ResNet-18), computed here
    p = stats.dunnett(r50, control=r18, rng=0).pvalue[0]
    assert p < 0.001
    assert rows.loc["ResNet-18", "vs best"] == "best"
    assert rows.loc["ResNet-50", "vs best"] == "worse (p < 0.001)"
    assert "epochs trained" not in frame  # every trial trained the epochs it was given
    notes = " ".join(summary.tables[0].notes)
    assert "Student t-interval" in notes and "Dunnett" in notes
    assert "*" not in notes  # no start/finish times: nothing marked as contended


def test_dunnett_marks_follow_scipys_decision(tmp_path):
    spec = load_space(write_space(tmp_path, name="cmp", **THREE_MODELS))
    seeds = {
        "resnet18": [90.0, 91.0, 92.0],
        "resnet34": [89.5, 90.5, 92.5],  # as good, within the seed-to-seed spread
        "resnet50": [80.0, 80.5, 81.0],  # ten points lower
    }
    summary = summarize(
        make_experiment(tmp_path / "exp", spec, lambda t: seeds[t.model][t.seed]), write=False
    )
    marks = summary.tables[0].frame.set_index("model")["vs best"]
    found = stats.dunnett(seeds["resnet34"], seeds["resnet50"], control=seeds["resnet18"], rng=0)
    assert marks["ResNet-18"] == "best"
    for name, p in zip(("ResNet-34", "ResNet-50"), found.pvalue, strict=True):
        expected = "worse" if p < 0.05 else "not distinguishable from the best"
        assert marks[name].startswith(expected + " (p ")
        assert p_in_mark(marks[name]) == pytest.approx(p, abs=0.01)
    assert marks["ResNet-34"].startswith("not distinguishable")  # scipy: p ~ 0.9
    assert marks["ResNet-50"].startswith("worse")


# ------------------------------------------------------------------ single runs


def test_single_runs_with_predictions_get_wilson_intervals_and_mcnemar_holm(tmp_path):
    spec = load_space(write_space(tmp_path, name="cmp", **{**THREE_MODELS, "repeats": 1}))
    wrong = {
        "resnet18": [48, 49],
        "resnet34": [47, 48, 49],  # one image apart from ResNet-18
        "resnet50": [*range(18), 48, 49],  # 18 more images wrong than ResNet-18
    }
    folder = make_experiment(
        tmp_path / "exp", spec, lambda t: 100 * (1 - len(wrong[t.model]) / TEST_IMAGES)
    )
    correct = {}
    for i, trial in enumerate(spec.trials):
        write_predictions(folder, i, predicted_with_errors(wrong[trial.model]), LABELS)
        correct[trial.model] = ~np.isin(np.arange(TEST_IMAGES), wrong[trial.model])
    summary = summarize(folder, write=False)
    frame = summary.tables[0].frame
    assert frame.columns.tolist() == [
        "#",
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
        "95% CI",
        "vs best",
    ]
    rows = frame.set_index("model")
    assert rows["test accuracy (%)"].tolist() == [96.0, 94.0, 60.0]
    for model, name in (
        ("resnet18", "ResNet-18"),
        ("resnet34", "ResNet-34"),
        ("resnet50", "ResNet-50"),
    ):
        assert rows.loc[name, "95% CI"] == wilson_ci(int(correct[model].sum()))
    raw = [exact_mcnemar_p(correct[m], correct["resnet18"]) for m in ("resnet34", "resnet50")]
    holm = multipletests(raw, method="holm")[1]
    assert holm[0] == 1.0 and holm[1] < 0.001  # 1 discordant image; 18 against 0
    assert rows.loc["ResNet-18", "vs best"] == "best"
    assert rows.loc["ResNet-34", "vs best"] == "not distinguishable from the best (p = 1.00)"
    assert rows.loc["ResNet-50", "vs best"] == "worse (p < 0.001)"
    notes = " ".join(summary.tables[0].notes)
    assert "Wilson" in notes and "McNemar" in notes and "Holm" in notes

    classes = table(summary, "cmp-classes-fashion-mnist").frame
    assert classes.columns.tolist() == ["#", *CLASS_NAMES["fashion-mnist"]]
    by_row = classes.set_index("#")
    for row, model in (("#1", "resnet18"), ("#2", "resnet34"), ("#3", "resnet50")):
        expected = 100 * correct[model].reshape(-1, 10).mean(axis=0)  # class = index % 10
        assert by_row.loc[row].tolist() == pytest.approx(expected)
    assert by_row.loc["#3"].tolist() == [60.0] * 10  # two of five wrong in every class


def test_single_runs_without_predictions_count_from_accuracy_and_test_size(tmp_path):
    spec = load_space(write_space(tmp_path, name="cmp", **{**COMPARE, "repeats": 1}))
    accuracy = {"resnet18": 90.0, "resnet50": 84.0}  # 45 and 42 of the 50 test images
    summary = summarize(
        make_experiment(tmp_path / "exp", spec, lambda t: accuracy[t.model]), write=False
    )
    frame = summary.tables[0].frame.set_index("model")
    assert frame.loc["ResNet-18", "95% CI"] == wilson_ci(45)
    assert frame.loc["ResNet-50", "95% CI"] == wilson_ci(42)
    # no per-image predictions and one run each: nothing to test the rows against
    assert "vs best" not in frame and "± std" not in frame and "n" not in frame
    assert not any(t.name.startswith("cmp-classes") for t in summary.tables)
    notes = summary.tables[0].notes
    assert "test-sampling (Wilson) interval" in " ".join(notes)
    assert (
        "Data: MNIST 100 train / 50 test, Fashion-MNIST 100 train / 50 test; epochs as listed."
        in " ".join(notes)
    )


# ------------------------------------------------------------------ identical computations


Q2_WRONG = {
    "best": [45, 46, 47, 48, 49],  # rows 1-3: 45 of 50
    "low lr": [*range(9), 45, 46, 47, 48, 49],  # rows 4-5: 9 more images wrong, 36 of 50
}


def q2_wrong(index: int) -> list[int]:
    """Images trial `index` of q2 gets wrong (one trial per row, rows in trial order)."""
    if index < 3:
        return Q2_WRONG["best"]
    if index < 5:
        return Q2_WRONG["low lr"]
    return [*Q2_WRONG["best"], 10 + index]  # rows 6-10: one image more than row 1


@pytest.fixture
def q2_smoke(tmp_path):
    """q2 at --smoke on the CPU: every trial trained 1 epoch, predictions saved."""
    spec = load_space("q2")
    index = {trial: i for i, trial in enumerate(spec.trials)}
    folder = make_experiment(
        tmp_path / "exp",
        spec,
        lambda t: 100 * (1 - len(q2_wrong(index[t])) / TEST_IMAGES),
        smoke=True,
        trained_epochs=1,
    )
    for i in range(len(spec.trials)):
        write_predictions(folder, i, predicted_with_errors(q2_wrong(i)), LABELS)
    return summarize(folder, write=False)


def test_q2_smoke_shows_identical_computations_once_and_never_ranks_them(q2_smoke):
    first = q2_smoke.tables[0]
    assert first.name == "q2"
    frame = first.frame
    columns = frame.columns.tolist()
    assert columns[columns.index("epochs") + 1] == "epochs trained"
    assert frame["epochs"].tolist() == [5, 15, 15, 5, 5, 5, 5, 5, 5, 5]
    assert (frame["epochs trained"] == "1").all()
    marks = frame.set_index("#")["vs best"]
    assert marks[1] == "best"
    assert marks[2] == marks[3] == "same computation as #1 (best)"
    assert marks[5] == "same computation as #4"
    # Holm over the 6 distinct rivals (rows 4, 6-10), not over all 9 other rows
    correct = [~np.isin(np.arange(TEST_IMAGES), q2_wrong(i)) for i in range(10)]
    rivals = [3, 5, 6, 7, 8, 9]  # trial indices of rows 4 and 6-10
    raw = [exact_mcnemar_p(correct[i], correct[0]) for i in rivals]
    holm = dict(zip(rivals, multipletests(raw, method="holm")[1], strict=True))
    assert holm[3] == pytest.approx(6 * 2 / 2**9)  # 9 discordant images, all for row 1
    assert marks[4] == f"worse (p = {holm[3]:.3f})" == "worse (p = 0.023)"
    for i in rivals[1:]:
        assert holm[i] == 1.0
        assert marks[i + 1] == "not distinguishable from the best (p = 1.00)"
    assert frame.set_index("#").loc[1, "95% CI"] == wilson_ci(45)
    assert frame.set_index("#").loc[4, "95% CI"] == wilson_ci(36)

    notes = first.notes
    assert INERT_CPU in notes and INERT_SMOKE_EPOCHS in notes
    assert any(n.startswith("same computation as #k") for n in notes)
    assert "1 epoch per trial (--smoke)" in " ".join(notes)
    for other in q2_smoke.tables[1:]:  # said once, under the first table
        assert INERT_CPU not in other.notes and INERT_SMOKE_EPOCHS not in other.notes


def test_q2_smoke_effects_leave_out_the_factors_that_could_not_act(q2_smoke):
    effects = table(q2_smoke, "q2-effects-fashion-mnist")
    assert set(effects.frame["factor"]) == {"model", "batch_size", "optimizer", "lr"}
    assert effects.frame.columns.tolist() == [
        "factor",
        "contrast",
        "effect on accuracy (pp)",
        "95% CI",
        "p",
        "within",
        "confounded",
    ]
    notes = " ".join(effects.notes)
    assert "pin_memory left out: it could not act (every trial trained on the CPU" in notes
    assert "epochs left out: it could not act (every trial trained 1 epoch(s)" in notes
    assert "10 trials are 7 distinct computations" in notes
    lr = effects.frame.set_index("factor").loc["lr"]
    assert lr["effect on accuracy (pp)"] == pytest.approx(90.0 - 72.0)  # rows 1 and 4


def test_q2_smoke_claims_cannot_be_told_and_titles_say_smoke(q2_smoke):
    claims = table(q2_smoke, "q2-claims").frame
    assert len(claims) == 3  # pin_memory, ResNet-50 vs 18, accuracy-to-cost (no MNIST)
    assert (claims["verdict"] == CANNOT_TELL).all()
    study = table(q2_smoke, "q2-study")
    assert "A smoke run: its numbers are not at the study's scale." in study.notes
    built = [t for t in q2_smoke.tables if "-classes-" not in t.name]
    assert all(t.title.endswith("(SMOKE RUN: not the study's numbers)") for t in built)


def test_smoke_per_class_tables_say_smoke_run(q2_smoke):
    classes = table(q2_smoke, "q2-classes-fashion-mnist")
    assert "SMOKE RUN" in classes.title


def test_q2_nested_factors_are_compared_within_resnet18_adam_batch16(tmp_path):
    """On a GPU at full epochs every factor acts; accuracy is exactly additive here, so each
    contrast must come out as the effect put in, compared where the design varies it."""
    spec = load_space("q2")
    effect = {"resnet18": 0.0, "resnet34": 1.0, "resnet50": 2.0}

    def accuracy(t):
        return (
            80.0
            + effect[t.model]
            + 0.3 * t.pin_memory
            + 0.1 * t.epochs  # 15 - 5 epochs: +1.0
            + 0.5 * (t.optimizer == "sgd")
            + 0.2 * (t.batch_size == 32)
            - 1.0 * (t.lr == 0.0001)
        )

    summary = summarize(
        make_experiment(tmp_path / "exp", spec, accuracy, device="cuda"), write=False
    )
    assert "epochs trained" not in summary.tables[0].frame
    assert "vs best" not in summary.tables[0].frame  # no repeats, no predictions, no twins
    assert not any("could not act" in n for n in summary.tables[0].notes)
    effects = table(summary, "q2-effects-fashion-mnist").frame.set_index("contrast")
    assert effects.loc["True - False", "factor"] == "pin_memory"
    assert effects.loc["True - False", "effect on accuracy (pp)"] == pytest.approx(0.3)
    assert effects.loc["True - False", "within"] == "ResNet-18 / batch_size 16 / Adam"
    assert effects.loc["15 - 5", "factor"] == "epochs"
    assert effects.loc["15 - 5", "effect on accuracy (pp)"] == pytest.approx(1.0)
    assert effects.loc["15 - 5", "within"] == "ResNet-18 / batch_size 16 / Adam / lr 0.001"
    # SGD ran with momentum 0.9, which the study does not state: said where the effect is
    assert effects.loc["SGD (momentum 0.9) - Adam", "effect on accuracy (pp)"] == pytest.approx(0.5)
    shown = summary.tables[0].shown()
    assert set(shown.loc[shown["optimizer"] == "Adam", "momentum"]) == {"—"}  # Adam has none
    assert set(shown.loc[shown["optimizer"] == "SGD", "momentum"]) == {"0.9"}
    assert effects.loc["32 - 16", "effect on accuracy (pp)"] == pytest.approx(0.2)
    assert effects.loc["0.001 - 0.0001", "effect on accuracy (pp)"] == pytest.approx(1.0)
    assert effects.loc["ResNet-50 - ResNet-18", "effect on accuracy (pp)"] == pytest.approx(2.0)


# ------------------------------------------------------------------ the study beside the run


def test_q1b_with_the_studys_accuracies_differs_by_nothing(tmp_path):
    reference = builtin_reference("q1b").set_index(["dataset", "kernel"])["study_accuracy"]
    spec = load_space("q1b")
    summary = summarize(
        make_experiment(tmp_path / "exp", spec, lambda t: reference[(t.dataset, t.kernel)]),
        write=False,
    )
    assert summary.tables[0].name == "q1b"
    study = table(summary, "q1b-study")
    assert len(study.frame) == 4
    assert study.frame["difference (pp)"].astype(float).tolist() == [0.0] * 4
    assert study.frame["study (%)"].tolist() == study.frame["this run (%)"].tolist()
    assert study.frame["study (%)"].tolist() == reference.tolist()
    # one run each, no predictions: Wilson on round(accuracy x 50) correct images
    for _, row in study.frame.iterrows():
        right = round(row["this run (%)"] * TEST_IMAGES / 100)
        assert row["95% CI"] == wilson_ci(right)
        low, high = proportion_confint(right, TEST_IMAGES, alpha=0.05, method="wilson")
        inside = 100 * low <= row["study (%)"] <= 100 * high
        assert row["consistent with the study"] == ("yes" if inside else "no")
        # issue 28 item 5: the difference with its interval, not the number alone
        study_value = row["study (%)"]
        lo, hi = 100 * low - study_value, 100 * high - study_value
        assert row["difference 95% CI"] == f"[{lo:+.2f}, {hi:+.2f}]"
    assert any(n.startswith("Every accuracy here equals the study's") for n in study.notes)
    claims = table(summary, "q1b-claims").frame
    assert claims["claim"].tolist() == ["RBF beats Poly on both datasets (SVM)."]


def test_a_run_off_the_study_says_nothing_of_equality(tmp_path):
    spec = load_space("q1b")
    summary = summarize(make_experiment(tmp_path / "exp", spec, lambda t: 70.0), write=False)
    study = table(summary, "q1b-study")
    reference = builtin_reference("q1b")["study_accuracy"]
    assert study.frame["difference (pp)"].astype(float).tolist() == pytest.approx(
        (70.0 - reference).round(2).tolist()
    )
    assert not any(n.startswith("Every accuracy here equals") for n in study.notes)


# ------------------------------------------------------------------ contended times


@pytest.mark.parametrize(("second_start", "marked"), [(50.0, True), (95.0, False)])
def test_times_taken_beside_other_trials_on_the_node_are_marked(tmp_path, second_start, marked):
    """ResNet-18 runs 0-100 s on node a; ResNet-34 overlaps it there (50% or 5% of each
    one's time); ResNet-50 runs 0-100 s on node b: alone on its node."""
    spec = load_space(write_space(tmp_path, name="cmp", **{**THREE_MODELS, "repeats": 1}))
    when = {
        "resnet18": (0.0, 100.0, "a"),
        "resnet34": (second_start, second_start + 100.0, "a"),
        "resnet50": (0.0, 100.0, "b"),
    }

    def report(t):
        return dict(zip(("started_at", "finished_at", "node_id"), when[t.model], strict=True))

    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0, report=report)
    summary = summarize(folder, write=False)
    times = summary.tables[0].frame.set_index("model")["train time (ms)"]
    overlap = (100.0 - second_start) / 100.0
    assert (overlap > 0.1) == marked
    shown = "4,000 *" if marked else "4,000"
    assert times.tolist() == [shown, shown, "4,000"]
    said = any(
        "other trials ran on the same node for more than 10%" in n for n in summary.tables[0].notes
    )
    assert said == marked


# ------------------------------------------------------------------ q1a: paired by seed


def q1a_summary(tmp_path, accuracy):
    spec = with_repeats(load_space("q1a"), 2)
    return spec, summarize(make_experiment(tmp_path / "exp", spec, accuracy), write=False)


def test_q1a_equal_differences_have_no_p(tmp_path):
    # ResNet-50 beats ResNet-18 by exactly 1 point on every seed and row: no spread to test
    _, summary = q1a_summary(tmp_path, lambda t: 90.0 + t.seed + (t.model == "resnet50"))
    mnist = summary.tables[0]
    assert mnist.name == "q1a-mnist" and len(mnist.frame) == 8
    assert (mnist.frame["ResNet-50 - ResNet-18 (pp)"] == 1.0).all()
    assert mnist.frame["p (paired t)"].isna().all()  # not 0: t is undefined without spread
    assert (mnist.frame["ResNet-18 acc (%)"] == 90.5).all()
    assert (mnist.frame["ResNet-18 95% CI"] == t_ci([90.0, 91.0])).all()
    assert (mnist.frame["ResNet-50 95% CI"] == t_ci([91.0, 92.0])).all()
    # q1a's SGD rows run with momentum 0.9, which the study does not state: a column says so
    shown = mnist.shown()
    assert list(shown.columns[:3]) == ["batch size", "optimizer", "momentum"]
    assert set(shown.loc[shown["optimizer"] == "SGD", "momentum"]) == {"0.9"}
    assert set(shown.loc[shown["optimizer"] == "Adam", "momentum"]) == {"—"}


def test_q1a_paired_t_and_model_effect_match_scipy_and_statsmodels(tmp_path):
    def accuracy(t):
        gain = 1 + 0.5 * t.seed + t.seed * (t.batch_size == 32)  # differs between seeds
        return 90.0 + t.seed + (t.model == "resnet50") * gain

    spec, summary = q1a_summary(tmp_path, accuracy)
    mnist = table(summary, "q1a-mnist").frame
    for _, row in mnist.iterrows():
        r18 = [accuracy(_trial(spec, "resnet18", row, s)) for s in (0, 1)]
        r50 = [accuracy(_trial(spec, "resnet50", row, s)) for s in (0, 1)]
        assert row["ResNet-50 - ResNet-18 (pp)"] == pytest.approx(np.mean(r50) - np.mean(r18))
        assert row["p (paired t)"] == pytest.approx(stats.ttest_rel(r50, r18).pvalue)
    # the model's effect: OLS on the design's main effects (epochs always moves with lr)
    trials = pd.DataFrame([{**asdict(t), "acc": accuracy(t)} for t in spec.trials])
    fit = smf.ols(
        "acc ~ C(model) + C(batch_size) + C(optimizer) + C(lr)",
        data=trials[trials["dataset"] == "mnist"],
    ).fit()
    name = "C(model)[T.resnet50]"
    low, high = fit.conf_int(0.05).loc[name]
    effects = table(summary, "q1a-effects-mnist").frame.set_index("factor")
    assert effects.loc["model", "contrast"] == "ResNet-50 - ResNet-18"
    assert effects.loc["model", "effect on accuracy (pp)"] == pytest.approx(
        round(fit.params[name], 2)
    )
    assert effects.loc["model", "95% CI"] == ci_text(low, high)
    assert effects.loc["model", "p"] == f"{fit.pvalues[name]:.3g}"
    assert effects.loc["lr", "confounded"] == "epochs"
    assert "pin_memory" not in effects.index  # could not act on the CPU


def _trial(spec, model, row, seed):
    """The q1a trial of a table row (MNIST), a model and a seed."""
    return next(
        t
        for t in spec.trials
        if t.dataset == "mnist"
        and t.model == model
        and t.seed == seed
        and t.batch_size == row["batch size"]
        and t.optimizer == row["optimizer"].lower()
        and t.lr == row["LR"]
    )


# ------------------------------------------------------------------ notes said once


@pytest.mark.parametrize(
    ("device", "preload", "said"),
    [
        ("cpu", False, "every trial trained on the CPU, where nothing is pinned"),
        ("cuda", True, "the datasets were preloaded on the GPU (--preload)"),
        ("cuda", False, None),
    ],
)
def test_tables_say_once_when_pin_memory_could_not_act(tmp_path, device, preload, said):
    spec = load_space(write_space(tmp_path, name="cmp", **COMPARE))
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0, device=device, preload=preload)
    summary = summarize(folder, write=False)
    found = [n for n in notes_of(summary) if n.startswith("pin_memory could not act")]
    assert found == ([f"pin_memory could not act: {said}."] if said else [])
    if said:
        assert found[0] in summary.tables[0].notes


def test_partial_study_is_said_under_the_first_table(tmp_path):
    spec = select(load_space("q2"), where=["model=resnet34"])
    summary = summarize(make_experiment(tmp_path / "exp", spec, lambda t: 85.0), write=False)
    assert summary.tables[0].frame["model"].tolist() == ["ResNet-34"] * 4
    assert summary.tables[0].notes[-1] == (
        "Partial study: 4 of the 10 trials of q2 ran (model=resnet34): "
        "trials 6, 7, 8, 9 of `tune-mnist show q2`."
    )
    study = table(summary, "q2-study")
    assert (
        "4 of the study's 10 configurations ran here (the rest were not part of this run)."
        in study.notes
    )


def test_non_smoke_titles_do_not_say_smoke(repeated):
    assert not any("SMOKE" in t.title for t in summarize(repeated, write=False).tables)


# ------------------------------------------------------------------ known bugs (tables.py)


def test_svm_configurations_differing_in_c_are_two_rows(tmp_path):
    spec = load_space(
        write_space(
            tmp_path,
            name="svmc",
            trainable="svm",
            fixed={"dataset": "mnist", "kernel": "rbf"},
            grid={"C": [0.1, 1.0]},
        )
    )
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 80.0 if t.C == 0.1 else 90.0)
    for result in folder.glob("*/result.json"):  # an SVM reports no epoch
        lines = [
            {k: v for k, v in json.loads(line).items() if k != "epoch"}
            for line in result.read_text().splitlines()
        ]
        result.write_text("\n".join(json.dumps(line) for line in lines))
    frame = summarize(folder, write=False).tables[0].frame
    assert frame["test accuracy (%)"].tolist() == [80.0, 90.0]


def test_unfinished_trials_do_not_make_epochs_look_capped(tmp_path):
    # q2's two 15-epoch trials have not run; the others trained their 5 epochs, uncapped
    folder = make_experiment(
        tmp_path / "exp", load_space("q2"), lambda t: 85.0, skip={1, 2}, device="cuda"
    )
    notes = summarize(folder, write=False).tables[0].notes
    assert not any(n.startswith("epochs could not act") for n in notes)


def test_ablation_space_without_rows_builds_its_table(tmp_path):
    spec = load_space(
        write_space(
            tmp_path,
            name="abl",
            trainable="resnet",
            report="ablation",
            fixed={"dataset": "mnist", "optimizer": "adam", "lr": 0.001, "epochs": 2},
            grid={"model": ["resnet18", "resnet50"], "batch_size": [16, 32]},
        )
    )
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 80.0 + (t.batch_size == 32))
    frame = table(summarize(folder, write=False), "abl-mnist").frame
    assert frame["ResNet-18 acc (%)"].tolist() == [80.0, 81.0]


def test_every_view_prints_one_precision_per_kind_of_column(tmp_path):
    """Issue 28, items 3 and 16: p of 0.0 where it is below 0.001, 99.0 beside 99.02,
    900000.0 images, LR 0.0010 in HTML but 0.001 in Markdown."""
    from tune_mnist.analysis.html import render_html
    from tune_mnist.analysis.table import Table

    frame = pd.DataFrame(
        {
            "LR": [0.001, 0.0001],
            "acc (%)": [99.0, 99.02],
            "p (McNemar)": [1e-9, 0.0471],
            "images": [900000.0, 60000.0],
            "CPU-seconds": [12.3456, 7.0],
        }
    )
    shown = Table("t", "t", frame).shown()
    assert shown.to_dict("list") == {
        "LR": ["0.001", "0.0001"],
        "acc (%)": ["99.00", "99.02"],
        "p (McNemar)": ["< 0.001", "0.047"],
        "images": ["900,000", "60,000"],
        "CPU-seconds": ["12.3", "7.0"],
    }
    markdown = Table("t", "t", frame).to_markdown()
    page = render_html("t", [Table("t", "t", frame)], [], [], {})
    for text in ("0.0001", "99.00", "< 0.001", "900,000"):
        assert text in markdown and text.replace("<", "&lt;") in page
    assert "0.0010" not in page and "900000.0" not in markdown


def test_svm_reports_speak_of_no_seeds(tmp_path):
    """Issue 28 item 10: an SVC fit has no randomness; its report says so and never speaks
    of seed-to-seed variation."""
    from tests.experiments import write_predictions
    from tune_mnist.spec.spaces import parse_space

    raw = {"name": "s", "trainable": "svm", "fixed": {"dataset": "mnist"}}
    spec = parse_space({**raw, "grid": {"kernel": ["rbf", "poly"]}}, "s.yaml")
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0)
    for i in range(2):
        write_predictions(folder, i, np.zeros(50, dtype=np.int64), np.zeros(50, dtype=np.int64))
    summary = summarize(folder, write=False)
    notes = " ".join(n for t in summary.tables for n in t.notes)
    assert "An SVC fit has no seed" in notes
    assert "seed-to-seed" not in notes and "seeds" not in notes


def test_a_smoke_q1a_table_says_what_the_trials_trained(tmp_path):
    """Issue 28 item 11: the design's 5 and 15 epochs beside the 1 a smoke trial trained."""
    spec = load_space("q1a")
    folder = make_experiment(tmp_path / "e", spec, lambda t: 90.0, smoke=True, trained_epochs=1)
    shown = summarize(folder, write=False).tables[0].shown()
    assert list(shown.columns).index("epochs trained") == list(shown.columns).index("epochs") + 1
    assert set(shown["epochs trained"]) == {"1"} and set(shown["epochs"]) == {5, 15}


def test_q1a_tables_carry_the_row_numbers_the_figures_use(tmp_path):
    """Issue 28 item 12: figures and per-class tables say #1-#32; the q1a tables did not."""
    spec = load_space("q1a")
    folder = make_experiment(tmp_path / "e", spec, lambda t: 90.0)
    summary = summarize(folder, write=False)
    results = summary.results
    mnist = summary.tables[0].frame
    for model, name in (("resnet18", "ResNet-18"), ("resnet50", "ResNet-50")):
        rows = results[(results["dataset"] == "mnist") & (results["model"] == model)]["row"]
        assert sorted(mnist[f"{name} #"].tolist()) == sorted(rows.tolist())
