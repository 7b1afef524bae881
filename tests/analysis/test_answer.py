"""The answer a report gives first, on hand-made experiments whose numbers are known."""

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from tests.experiments import make_experiment, write_predictions
from tune_mnist.analysis.report import summarize
from tune_mnist.spec.spaces import parse_space

SVM = {"name": "s", "trainable": "svm", "fixed": {"dataset": "mnist"}}


def experiment(tmp_path, grid, accuracy, **kwargs):
    spec = parse_space({**SVM, "grid": grid}, "s.yaml")
    return make_experiment(tmp_path / "exp", spec, accuracy, **kwargs), spec


def test_the_best_the_runner_up_and_an_exact_paired_test(tmp_path):
    folder, _ = experiment(
        tmp_path,
        {"kernel": ["rbf", "poly", "linear"]},
        lambda t: {"rbf": 90.0, "poly": 80.0, "linear": 70.0}[t.kernel],
    )
    labels = np.zeros(50, dtype=np.int64)
    rbf = np.r_[np.zeros(45), np.ones(5)].astype(np.int64)  # 45 of 50 right
    poly = np.r_[np.zeros(40), np.ones(10)].astype(np.int64)  # 40 of 50, 5 fewer
    write_predictions(folder, 0, rbf, labels)
    write_predictions(folder, 1, poly, labels)
    write_predictions(folder, 2, np.ones(50, dtype=np.int64), labels)

    answer = summarize(folder, write=False).answer
    (found,) = answer.findings
    assert found.best_row == 1 and found.best_accuracy == 90.0
    assert found.best.startswith("MNIST: #1 (RBF) is best of 3 configurations: 90.00%")
    assert "chosen on test accuracy, the set it is scored on (optimistic)" in found.best
    expected = mcnemar([[40, 5], [0, 5]], exact=True).pvalue  # rbf right, poly wrong: 5
    assert f"p = {expected:.3f}" in found.runner_up
    assert found.runner_up.startswith("Runner-up #2 (Poly): 80.00%, 10.00 points behind")
    assert "not distinguishable at this scale" in found.runner_up  # p = 0.0625 > 0.05


def test_without_saved_predictions_the_answer_says_why_there_is_no_test(tmp_path):
    folder, _ = experiment(
        tmp_path, {"kernel": ["rbf", "poly"]}, lambda t: 90.0 if t.kernel == "rbf" else 85.0
    )
    (found,) = summarize(folder, write=False).answer.findings
    assert found.runner_up.endswith("no test: one run each and no saved predictions to pair.")


def test_seeds_are_paired_and_the_difference_has_its_interval(tmp_path):
    spec = parse_space({**SVM, "grid": {"kernel": ["rbf", "poly"]}, "repeats": 3}, "s.yaml")
    values = {
        ("rbf", 0): 90.0,
        ("rbf", 1): 91.0,
        ("rbf", 2): 92.0,
        ("poly", 0): 85.0,
        ("poly", 1): 87.0,
        ("poly", 2): 86.5,
    }
    folder = make_experiment(tmp_path / "exp", spec, lambda t: values[t.kernel, t.seed])
    (found,) = summarize(folder, write=False).answer.findings
    from scipy.stats import ttest_rel

    p = ttest_rel([90, 91, 92], [85, 87, 86.5]).pvalue
    assert "paired t over seeds" in found.runner_up and f"p = {p:.3f}" in found.runner_up
    assert "mean of 3 seeds" in found.best


def test_each_dataset_gets_its_own_answer_and_the_study_stands_beside_it(tmp_path):
    """q1b's built-in study numbers; a full-scale experiment made by hand: the difference
    from the study with its interval, said as consistent or not."""
    from tune_mnist.spec.reference import builtin_reference
    from tune_mnist.spec.spaces import load_space

    spec = load_space("q1b")
    study = builtin_reference("q1b").set_index(["dataset", "kernel"])["study_accuracy"]
    below = {"mnist": 0.0, "fashion-mnist": 30.0}  # Fashion-MNIST far below the study
    folder = make_experiment(
        tmp_path / "exp", spec, lambda t: study[t.dataset, t.kernel] - below[t.dataset]
    )
    answer = summarize(folder, write=False).answer
    assert [f.dataset for f in answer.findings] == ["mnist", "fashion-mnist"]
    texts = {f.dataset: f.study for f in answer.findings}
    assert texts["mnist"].startswith("The study reports 95.94%: this run is +0.00 points")
    assert texts["mnist"].endswith("consistent with the study.")
    assert texts["fashion-mnist"].startswith("The study reports 85.31%: this run is -30.00 points")
    assert texts["fashion-mnist"].endswith("below the study.")
    assert any(
        c.startswith("Fashion-MNIST: the best configuration differs") for c in answer.caveats
    )


def test_the_answer_heads_tables_md_and_the_page(tmp_path):
    folder, _ = experiment(
        tmp_path, {"kernel": ["rbf", "poly"]}, lambda t: 90.0 if t.kernel == "rbf" else 85.0
    )
    summarize(folder, formats=("md", "html"))
    markdown = (folder / "report" / "tables.md").read_text()
    assert markdown.startswith("## The answer\n")
    assert markdown.index("The answer") < markdown.index("SVM baselines")
    page = (folder / "report" / "index.html").read_text()
    assert page.index('id="answer"') < page.index("<nav>")


@pytest.mark.parametrize("smoke", [True, False])
def test_a_smoke_run_is_said_first_as_a_caveat(tmp_path, smoke):
    folder, _ = experiment(
        tmp_path,
        {"kernel": ["rbf", "poly"]},
        lambda t: 90.0 if t.kernel == "rbf" else 85.0,
        smoke=smoke,
    )
    answer = summarize(folder, write=False).answer
    said = any("smoke run" in c for c in answer.caveats)
    assert said == smoke
    # the images the trials used, said; an SVM has no epochs
    data = "100 train / 50 test images each"
    assert answer.run.startswith(
        f"s: 2 of 2 trials finished, {'smoke scale (' if smoke else 'on '}{data}"
    )
