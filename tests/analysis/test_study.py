"""The study's reference tables, the side-by-side table and the claim checks, on known answers."""

import importlib.util
import math
import sys
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tune_mnist
from tune_mnist.analysis import study
from tune_mnist.errors import TuneMnistError
from tune_mnist.spec import reference as references

ROOT = Path(__file__).resolve().parents[2]
SPACES = ROOT / "search_spaces"


@pytest.fixture
def checkout_spaces(monkeypatch):
    """tune_mnist.search_spaces as this checkout's folder.

    An editable install of another checkout maps the data package to that checkout's
    folder; importlib.resources must find the files of the code under test.
    """
    if Path(str(resources.files("tune_mnist.search_spaces"))).resolve() != SPACES.resolve():
        spec = importlib.util.spec_from_file_location(
            "tune_mnist.search_spaces",
            SPACES / "__init__.py",
            submodule_search_locations=[str(SPACES)],
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setitem(sys.modules, "tune_mnist.search_spaces", module)
        monkeypatch.setattr(tune_mnist, "search_spaces", module, raising=False)


def write(tmp_path, text, name="ref.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- reference tables


def test_builtin_references_are_package_data(checkout_spaces):
    package = Path(str(resources.files("tune_mnist.search_spaces")))
    for space in ("q1a", "q1b", "q2"):
        assert references.reference_path(space) == package / "reference" / f"{space}.csv"
    assert references.reference_path("q2-full") == references.reference_path("q2")
    benchmark = references.builtin_reference("q1b-full")
    assert benchmark[["dataset", "kernel", "train_samples", "C"]].values.tolist() == [
        ["fashion-mnist", "rbf", 60000, 10.0]
    ]
    assert benchmark["study_accuracy"].tolist() == [89.7]
    assert references.reference_path("my-space") is None
    assert (package / "reference" / "README.md").is_file()


def test_pyproject_installs_every_reference_file():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["tune_mnist.search_spaces"]
    files = [p.relative_to(SPACES).as_posix() for p in (SPACES / "reference").iterdir()]
    assert sorted(files) == [
        f"reference/{n}"
        for n in ("README.md", "fashion-benchmark.csv", "q1a.csv", "q1b.csv", "q2.csv")
    ]
    for name in files:
        assert any(fnmatch(name, pattern) for pattern in patterns), name


def test_the_reference_readme_points_nowhere_outside():
    text = (SPACES / "reference" / "README.md").read_text()
    assert "/work" not in text and "../" not in text and "one seed" in text


def test_q1a_wide_table_becomes_two_rows_per_design_row(checkout_spaces):
    ref = references.builtin_reference("q1a")
    assert len(ref) == 16
    assert list(ref.columns) == [
        "dataset",
        "model",
        "batch_size",
        "optimizer",
        "lr",
        "epochs",
        "pin_memory",
        "study_accuracy",
    ]
    assert set(ref["dataset"]) == {"mnist"}
    assert list(ref["model"][:4]) == ["resnet18", "resnet50", "resnet18", "resnet50"]
    row = ref[(ref["model"] == "resnet50") & (ref["batch_size"] == 32)].iloc[0]
    assert (row["optimizer"], row["lr"], row["epochs"], row["pin_memory"]) == (
        "sgd",
        0.001,
        5,
        False,
    )
    assert row["study_accuracy"] == 99.71
    assert ref.attrs["notes"] == [references.DATASET_NOTE]


def test_q1b_and_q2_references(checkout_spaces):
    q1b = references.builtin_reference("q1b")
    assert list(q1b["kernel"]) == ["rbf", "poly", "rbf", "poly"]
    assert q1b["study_train_time_ms"].iloc[0] == 7150.62
    q2 = references.builtin_reference("q2-full")
    assert len(q2) == 10 and set(q2["dataset"]) == {"fashion-mnist"}
    assert q2.iloc[9][["model", "study_gflops", "study_params_m"]].tolist() == [
        "resnet50",
        0.0788,
        23.52,
    ]
    assert q2.attrs["notes"] == []


def test_names_and_numbers_are_normalized(tmp_path):
    path = write(
        tmp_path,
        "dataset,model,batch_size,optimizer,lr,epochs,pin_memory,test_accuracy,gflops\n"
        "Fashion-MNIST,ResNet-18,16,Adam,1e-3,5,yes,92.5,\n"
        "FashionMNIST,resnet_34, 32 ,SGD,0.0001,15.0,False,90,0.0699\n",
    )
    ref = references.load_reference(path)
    assert ref["dataset"].tolist() == ["fashion-mnist", "fashion-mnist"]
    assert ref["model"].tolist() == ["resnet18", "resnet34"]
    assert ref["optimizer"].tolist() == ["adam", "sgd"]
    assert ref["lr"].tolist() == [0.001, 0.0001]
    assert ref["epochs"].tolist() == [5, 15] and ref["batch_size"].tolist() == [16, 32]
    assert ref["pin_memory"].tolist() == [True, False]
    assert math.isnan(ref["study_gflops"][0]) and ref["study_gflops"][1] == 0.0699


def test_a_long_table_without_dataset_takes_the_named_one(tmp_path):
    path = write(tmp_path, "kernel,train_samples,test_accuracy\nRBF,1000,90\n")
    assert references.load_reference(path, "mnist")["dataset"].tolist() == ["mnist"]


HEADER = "dataset,model,batch_size,optimizer,lr,epochs,pin_memory,test_accuracy\n"
GOOD = "mnist,resnet18,16,sgd,0.001,5,false,99.1\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot read the reference table"),
        (HEADER, "has no rows"),
        (HEADER.replace("lr", "learning_rate") + GOOD, "unknown column 'learning_rate'"),
        (HEADER + GOOD.replace("0.001", "fast"), "line 2: lr: expected a number, not 'fast'"),
        (HEADER + GOOD.replace("0.001", "-1"), "line 2: lr: expected a positive number"),
        (HEADER + GOOD.replace("99.1", "120"), "test_accuracy: expected a percentage"),
        (HEADER + GOOD.replace("99.1", ""), "line 2: test_accuracy is empty"),
        (HEADER + GOOD.replace("resnet18", "vgg16"), "'vgg16' is not one of resnet18"),
        (HEADER + GOOD.replace(",16,", ",1.5,"), "batch_size: expected a positive whole number"),
        (HEADER + GOOD.replace("false", "maybe"), "pin_memory: expected true or false"),
        (HEADER + GOOD + GOOD.replace("0.001", "1e-3"), "lines 2 and 3 repeat one configuration"),
        ("model,lr\nresnet18,0.1\n", "no accuracy column"),
        (
            "dataset,kernel,test_accuracy,study_accuracy\nmnist,rbf,90,91\n",
            "test_accuracy is given twice",
        ),
        ("kernel,test_accuracy\nrbf,90\n", "no dataset column"),
        ("lr,resnet50_test_accuracy,model\n0.1,99,resnet18\n", "mixes per-model columns"),
        ("lr,resnet50_gflops\n0.1,0.07\n", "no resnet50_test_accuracy column"),
        ('a,"b\n1,2\n', "cannot read the reference table"),
    ],
)
def test_a_malformed_reference_is_one_clear_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(TuneMnistError) as error:
        references.load_reference(path)
    assert message in str(error.value)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_missing_reference_file(tmp_path):
    with pytest.raises(TuneMnistError, match="cannot read the reference table"):
        references.load_reference(tmp_path / "absent.csv")


# ---------------------------------------------------------------- side by side


def run_row(mean, low=math.nan, high=math.nan, interval="Wilson", correct=None, **config):
    return {
        **config,
        "mean": mean,
        "n": 1,
        "ci_low": low,
        "ci_high": high,
        "interval": interval,
        "correct": correct,
    }


def test_study_vs_run_matches_rows_and_marks_the_interval(tmp_path):
    reference = references.load_reference(
        write(
            tmp_path,
            "batch_size,optimizer,lr,epochs,pin_memory,resnet18_test_accuracy,resnet50_test_accuracy\n"
            "16,sgd,0.001,5,False,99.18,98.98\n"
            "32,adam,0.0001,15,False,99.14,99.06\n",
        )
    )
    design = {
        "dataset": "mnist",
        "batch_size": 16,
        "optimizer": "sgd",
        "epochs": 5,
        "pin_memory": False,
    }
    run = pd.DataFrame(
        [
            run_row(99.30, 99.10, 99.50, model="resnet18", lr=1e-3, **design),  # study inside
            run_row(99.40, 99.20, 99.60, model="resnet50", lr=0.0010000000001, **design),  # outside
            run_row(97.00, model="resnet18", lr=1e-4, **design),  # not in the study: dropped
            run_row(
                99.00,
                model="resnet18",
                lr=0.0001,
                **{**design, "batch_size": 32, "optimizer": "adam", "epochs": 15},
            ),
        ]
    )
    keys = ["dataset", "model", "batch_size", "optimizer", "lr", "epochs", "pin_memory"]
    table = study.study_vs_run(reference, run, keys)
    assert list(table.columns) == [
        *keys,
        "study (%)",
        "this run (%)",
        "difference (pp)",
        "95% CI",
        "difference 95% CI",
        "consistent with the study",
    ]
    assert table["model"].tolist() == ["resnet18", "resnet50", "resnet18"]
    assert table["study (%)"].tolist() == [99.18, 98.98, 99.14]
    assert table["difference (pp)"].tolist() == [0.12, 0.42, -0.14]
    assert table["95% CI"].tolist() == ["[99.10, 99.50]", "[99.20, 99.60]", "—"]
    assert table["difference 95% CI"].tolist() == ["[-0.08, +0.32]", "[+0.22, +0.62]", "—"]
    assert table["consistent with the study"].tolist() == ["yes", "no", "—"]
    assert references.DATASET_NOTE in table.attrs["notes"]
    assert "95% CI of this run: Wilson." in table.attrs["notes"]


def test_study_vs_run_needs_the_keys_in_the_reference(checkout_spaces):
    run = pd.DataFrame([run_row(90, dataset="mnist", kernel="rbf", C=1.0)])
    with pytest.raises(TuneMnistError, match="no 'C' column"):
        study.study_vs_run(references.builtin_reference("q1b"), run, ["dataset", "kernel", "C"])


def test_study_vs_run_against_the_packaged_q2(checkout_spaces):
    config = {
        "dataset": "fashion-mnist",
        "model": "resnet50",
        "batch_size": 16,
        "optimizer": "sgd",
        "lr": 0.001,
        "epochs": 5,
        "pin_memory": True,
    }
    run = pd.DataFrame([run_row(90.0, 89.4, 90.6, **config)])
    table = study.study_vs_run(references.builtin_reference("q2"), run, list(config))
    columns = ["study (%)", "difference (pp)", "difference 95% CI", "consistent with the study"]
    assert table[columns].values.tolist() == [[90.73, -0.73, "[-1.33, -0.13]", "no"]]


# ---------------------------------------------------------------- claims


def verdicts(run, **kwargs):
    return {claim.text: claim.verdict for claim in study.check_claims(pd.DataFrame(run), **kwargs)}


def claim(run, number, **kwargs):
    found = [
        c for c in study.check_claims(pd.DataFrame(run), **kwargs) if c.text == study.CLAIMS[number]
    ]
    return found[0] if found else None


def mnist(mean, low, high, model="resnet18", **config):
    return run_row(
        mean,
        low,
        high,
        dataset="mnist",
        model=model,
        batch_size=16,
        optimizer="adam",
        lr=0.001,
        epochs=5,
        **config,
    )


def test_mcnemar_exact_known_answer():
    a = np.array([True] * 10 + [False] * 5 + [True] * 85)
    b = np.array([False] * 10 + [False] * 5 + [True] * 85)
    assert study.mcnemar_exact(a, b) == (10, 0, pytest.approx(2 / 2**10))
    assert study.mcnemar_exact(a, a)[2] == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        study.mcnemar_exact(a, b[:5])


def test_mcnemar_without_statsmodels_is_the_same_binomial_test(monkeypatch):
    a = np.array([True] * 9 + [False] * 3 + [True] * 50)
    b = np.array([False] * 9 + [True] * 3 + [True] * 50)
    with_statsmodels = study.mcnemar_exact(a, b)
    monkeypatch.setitem(sys.modules, "statsmodels.stats.contingency_tables", None)
    assert study.mcnemar_exact(a, b) == (9, 3, pytest.approx(with_statsmodels[2]))
    assert with_statsmodels[2] == pytest.approx(0.146, abs=5e-4)  # 2 * P(Bin(12, 1/2) <= 3)


def test_labels_read_whole_numbers_as_such():
    row = pd.Series(
        {
            "dataset": "mnist",
            "model": "resnet18",
            "batch_size": 16.0,
            "lr": 1e-4,
            "epochs": 5.0,
            "pin_memory": True,
            "momentum": 0.9,
            "kernel": math.nan,
        }
    )
    assert study._label(row) == "mnist/resnet18/bs16/lr0.0001/e5/pin/m0.9"


def test_claim_mnist_above_99():
    high = [
        mnist(99.4, 99.2, 99.6, pin_memory=False),
        mnist(99.3, 99.1, 99.5, model="resnet50", pin_memory=False),
    ]
    supported = claim(high, 0)
    assert supported.verdict == study.SUPPORTED and "99.10" in supported.evidence
    contradicted = claim([*high, mnist(98.0, 97.7, 98.3, pin_memory=True)], 0)
    assert contradicted.verdict == study.CONTRADICTED and "98.00%" in contradicted.evidence
    assert claim([*high, mnist(99.1, 98.9, 99.3, pin_memory=True)], 0).verdict == study.CANNOT_TELL
    no_interval = claim([mnist(99.5, math.nan, math.nan, pin_memory=False)], 0)
    assert no_interval.verdict == study.CANNOT_TELL and "no interval" in no_interval.evidence
    smoke = claim(high, 0, smoke=True)
    assert (
        smoke.verdict == study.CANNOT_TELL
        and "Smoke run" in smoke.evidence
        and "99.10" in smoke.evidence
    )
    assert claim([{**high[0], "dataset": "fashion-mnist"}], 0) is None


def test_claim_pin_memory():
    def pair(d_mean, half):
        return [
            mnist(99.0, 99.0 - half, 99.0 + half, pin_memory=False),
            mnist(99.0 + d_mean, 99.0 + d_mean - half, 99.0 + d_mean + half, pin_memory=True),
        ]

    # differences of two 0.2-wide half intervals: half-width of the difference 0.28
    supported = claim(pair(0.1, 0.2), 1)
    assert supported.verdict == study.SUPPORTED and "+0.10 ± 0.28" in supported.evidence
    assert claim(pair(1.5, 0.2), 1).verdict == study.CONTRADICTED
    assert claim(pair(0.5, 0.6), 1).verdict == study.CANNOT_TELL
    inert = claim(pair(1.5, 0.2), 1, inert={"pin_memory"})
    assert inert.verdict == study.CANNOT_TELL and "could not act" in inert.evidence
    # q1a's design: pin_memory changes only together with the optimizer
    aliased = [
        mnist(99.0, 98.9, 99.1, pin_memory=False),
        {**mnist(99.2, 99.1, 99.3, pin_memory=True), "optimizer": "sgd"},
    ]
    assert (
        claim(aliased, 1).verdict == study.CANNOT_TELL and "aliased" in claim(aliased, 1).evidence
    )
    assert claim([mnist(99.0, 98.9, 99.1, pin_memory=True)], 1) is None


def test_claim_resnet50_no_advantage():
    def rows(r50_mean, r50_half=0.2):
        return [
            mnist(99.2, 99.0, 99.4, pin_memory=False),
            mnist(
                r50_mean,
                r50_mean - r50_half,
                r50_mean + r50_half,
                model="resnet50",
                pin_memory=False,
            ),
        ]

    supported = claim(rows(99.3), 2)
    assert supported.verdict == study.SUPPORTED and "mean +0.10 pp" in supported.evidence
    contradicted = claim(rows(99.8), 2)
    assert contradicted.verdict == study.CONTRADICTED and "+0.60" in contradicted.evidence
    assert claim(rows(99.3, math.nan), 2).verdict == study.CANNOT_TELL
    # ResNet-50 significantly worse is no advantage
    assert claim(rows(98.0), 2).verdict == study.SUPPORTED
    # never in the same configuration
    apart = [rows(99.3)[0], {**rows(99.3)[1], "batch_size": 32}]
    assert claim(apart, 2).verdict == study.CANNOT_TELL


def test_claim_resnet50_by_mcnemar_with_bonferroni():
    r18 = np.zeros(1000, dtype=bool)
    r18[:900] = True
    r50 = r18.copy()
    r50[900:912] = True  # ResNet-50 alone right on 12 images: p = 2 / 2**12
    row18 = mnist(90.0, 88, 92, correct=r18, pin_memory=False)
    row50 = mnist(91.2, 89, 93, model="resnet50", correct=r50, pin_memory=False)
    contradicted = claim([row18, row50], 2)
    assert (
        contradicted.verdict == study.CONTRADICTED
        and "McNemar exact p=0.00049" in contradicted.evidence
    )
    # ResNet-50 alone right on 6 more images (p = 0.031) in one of two rows: not after Bonferroni
    r50_weak = r18.copy()
    r50_weak[900:906] = True
    others = [{**r, "epochs": 15, "correct": r18} for r in (row18, row50)]
    weak = claim([{**row18}, {**row50, "correct": r50_weak}, *others], 2)
    assert weak.verdict == study.CANNOT_TELL and "none after Bonferroni x2" in weak.evidence


def svm(dataset, kernel, correct, mean=None):
    mean = 100 * correct.mean() if mean is None else mean
    return run_row(mean, correct=correct, dataset=dataset, kernel=kernel, train_samples=10000)


def kernel_vectors(rbf_only, poly_only, n=10000):
    rbf = np.zeros(n, dtype=bool)
    rbf[:9000] = True
    poly = rbf.copy()
    rbf[9000 : 9000 + rbf_only] = True
    poly[9000 + rbf_only : 9000 + rbf_only + poly_only] = True
    return rbf, poly


def test_claim_rbf_beats_poly_by_mcnemar():
    rbf, poly = kernel_vectors(350, 50)  # RBF right on 300 more of the same images
    both = [
        svm(d, k, v) for d in ("mnist", "fashion-mnist") for k, v in (("rbf", rbf), ("poly", poly))
    ]
    supported = claim(both, 3)
    assert supported.verdict == study.SUPPORTED
    assert "mnist: RBF 93.50% vs Poly 90.50% (McNemar exact p=" in supported.evidence
    assert "350 vs 50 images" in supported.evidence
    one = claim(both[:2], 3)
    assert one.verdict == study.CANNOT_TELL and "only mnist ran" in one.evidence
    swapped = [*both[:2], svm("fashion-mnist", "rbf", poly), svm("fashion-mnist", "poly", rbf)]
    assert claim(swapped, 3).verdict == study.CONTRADICTED
    tie_rbf, tie_poly = kernel_vectors(20, 15)
    ties = [*both[:2], svm("fashion-mnist", "rbf", tie_rbf), svm("fashion-mnist", "poly", tie_poly)]
    tied = claim(ties, 3)
    assert tied.verdict == study.CANNOT_TELL == "cannot tell"  # issue 28 item 4: and why
    assert tied.evidence.endswith("RBF's lead is not significant at 0.05 on fashion-mnist")
    assert claim([both[0]], 3) is None


def test_claim_rbf_beats_poly_by_intervals_without_vectors():
    rows = [
        run_row(m, m - 0.4, m + 0.4, dataset=d, kernel=k, train_samples=10000)
        for d, k, m in (
            ("mnist", "rbf", 96),
            ("mnist", "poly", 95),
            ("fashion-mnist", "rbf", 85),
            ("fashion-mnist", "poly", 82),
        )
    ]
    assert claim(rows, 3).verdict == study.SUPPORTED
    assert claim([{**r, "ci_low": math.nan} for r in rows], 3).verdict == study.CANNOT_TELL


def fashion(model, mean, half=0.5, gflops=None, **changes):
    config = {
        "batch_size": 16,
        "optimizer": "adam",
        "lr": 0.001,
        "epochs": 5,
        "pin_memory": True,
        **changes,
    }
    return run_row(
        mean,
        mean - half,
        mean + half,
        dataset="fashion-mnist",
        model=model,
        gflops=gflops,
        **config,
    )


def test_claim_resnet18_balance():
    r18 = [
        fashion("resnet18", 92.0, gflops=0.0332),
        fashion("resnet18", 91.0, lr=0.0001, gflops=0.0332),
    ]
    deep_close = [
        fashion("resnet34", 92.3, gflops=0.0699),
        fashion("resnet50", 90.7, optimizer="sgd", gflops=0.0788),
    ]
    supported = claim(r18 + deep_close, 4)
    assert supported.verdict == study.SUPPORTED
    assert (
        "best ResNet-18: fashion-mnist/resnet18/bs16/adam/lr0.001/e5/pin 92.00% [91.50, 92.50] at 0.0332 GFLOPs"
        in supported.evidence
    )
    assert "0 of 2 deeper" in supported.evidence
    deep_better = [fashion("resnet34", 94.0), fashion("resnet50", 93.5, optimizer="sgd")]
    assert claim(r18 + deep_better, 4).verdict == study.CONTRADICTED
    mixed = claim([*r18, deep_better[0], deep_close[1]], 4)
    assert mixed.verdict == study.CANNOT_TELL and "1 of 2 deeper" in mixed.evidence
    assert claim([*r18, fashion("resnet34", 92.3, half=math.nan)], 4).verdict == study.CANNOT_TELL
    assert claim(r18, 4) is None


def test_only_claims_the_run_can_speak_to():
    rbf, poly = kernel_vectors(350, 50)
    svms = [
        svm(d, k, v) for d in ("mnist", "fashion-mnist") for k, v in (("rbf", rbf), ("poly", poly))
    ]
    assert list(verdicts(svms)) == [study.CLAIMS[3]]
    assert verdicts(svms, smoke=True) == {study.CLAIMS[3]: study.CANNOT_TELL}
