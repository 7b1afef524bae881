"""The answer a report gives first: the run in a phrase; per dataset, the best
configuration on the selection metric with its interval, the runner-up and the test
between them, and the study's number beside the best; then the caveats that matter.

The terminal, `tables.md` and `index.html` all open with it. Every sentence is computed
from the trials that ran; where a test cannot be made, the sentence says why instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from tune_mnist.analysis import stats
from tune_mnist.analysis.configurations import config_keys, configurations
from tune_mnist.analysis.table import DATASET_NAMES, LABELS, LEVEL_NAMES, Run
from tune_mnist.errors import TuneMnistError
from tune_mnist.store.results import numbers


@dataclass(frozen=True)
class Finding:
    """One dataset's answer: the best configuration and how it stands."""

    dataset: str
    best: str  # the sentence on the best configuration
    runner_up: str | None  # the sentence on the runner-up and the test, None if alone
    study: str | None  # the study's number beside the best, when the space has one
    best_row: int
    best_accuracy: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Answer:
    """The report's first screen (see the module's note)."""

    run: str  # the run in a phrase
    findings: list[Finding]
    caveats: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The answer as plain lines (the terminal's box)."""
        out = [self.run]
        for f in self.findings:
            out += ["", f.best] + [s for s in (f.runner_up, f.study) if s]
        if self.caveats:
            out += [""] + [f"Caveat: {c}" for c in self.caveats]
        return out

    def to_markdown(self) -> str:
        parts = ["## The answer", "", self.run, ""]
        for f in self.findings:
            parts += [f"- {f.best}"] + [f"  {s}" for s in (f.runner_up, f.study) if s]
        if self.caveats:
            parts += [""] + [f"> Caveat: {c}" for c in self.caveats]
        return "\n".join(parts) + "\n"

    def to_dict(self) -> dict:
        return asdict(self)


def answer(run: Run) -> Answer | None:
    """The answer of an experiment's report; None when no trial finished."""
    results = run.results
    done = results[results["status"] == "finished"]
    if done.empty:
        return None
    keys = config_keys(run.meta, run.results)
    findings = []
    for dataset in dict.fromkeys(done["dataset"]):
        part = Run(run.meta, results[results["dataset"] == dataset], run.predictions, run.inert)
        if finding := _finding(part, dataset, keys):
            findings.append(finding)
    return Answer(_run_phrase(run, len(done)), findings, _caveats(run, findings))


def _finding(run: Run, dataset: str, keys: list[str]) -> Finding | None:
    summary = configurations(run, keys)
    if summary.empty:
        return None
    done = run.results[run.results["status"] == "finished"]
    validation = numbers(done, "validation_accuracy")
    on_validation = bool(validation.notna().any())
    score = (
        validation.groupby(done["row"]).mean().reindex(summary["row"]).to_numpy()
        if on_validation
        else summary["mean"].to_numpy()
    )
    order = np.argsort(-np.nan_to_num(score, nan=-math.inf), kind="stable")
    best = summary.iloc[order[0]]
    varied = [k for k in keys if k != "dataset" and summary[k].nunique(dropna=False) > 1]
    chosen = (
        "validation accuracy (test accuracy reported)"
        if on_validation
        else "test accuracy, the set it is scored on (optimistic)"
    )
    name = DATASET_NAMES.get(dataset, dataset)
    best_text = (
        f"{name}: #{best['row']} {_describe(best, varied)} is best of {len(summary)} "
        f"configurations: {_accuracy(best)}; chosen on {chosen}."
    )
    rivals = [i for i in order[1:] if summary.iloc[i]["same_as"] != best["row"]]
    runner = _versus(best, summary.iloc[rivals[0]], varied) if rivals else None
    return Finding(
        dataset=dataset,
        best=best_text,
        runner_up=runner,
        study=_study(run, best, keys),
        best_row=int(best["row"]),
        best_accuracy=float(best["mean"]),
        ci_low=float(best["ci_low"]),
        ci_high=float(best["ci_high"]),
    )


def _describe(config: pd.Series, varied: list[str]) -> str:
    if not varied:
        return "(the only configuration)"
    shown = [k for k in varied if not (k == "momentum" and config.get("optimizer") == "adam")]
    return "(" + ", ".join(_setting(k, config[k]) for k in shown) + ")"


def _setting(key: str, value) -> str:
    """A field as the tables name it: ResNet-18, SGD, batch size 16, LR 0.001."""
    if named := LEVEL_NAMES.get(key, {}).get(value):
        return named
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{LABELS.get(key, key)} {text}"


def _accuracy(config: pd.Series) -> str:
    runs = "1 run" if config["n"] == 1 else f"mean of {int(config['n'])} seeds"
    return (
        f"{config['mean']:.2f}% test (95% CI {_interval(config['ci_low'], config['ci_high'])}, "
        f"{config['interval']}, {runs})"
    )


def _interval(low: float, high: float) -> str:
    return "—" if math.isnan(low) or math.isnan(high) else f"[{low:.2f}, {high:.2f}]"


def _versus(best: pd.Series, other: pd.Series, varied: list[str]) -> str:
    """The runner-up, and the difference best - runner-up with the test the data allows."""
    gap = best["mean"] - other["mean"]
    head = (
        f"Runner-up #{other['row']} {_describe(other, varied)}: {other['mean']:.2f}%, "
        f"{gap:.2f} points behind"
    )
    test = _difference(best, other)
    if test is None:
        return f"{head}; no test: {_why_no_test(best, other)}."
    low, high, p, name = test
    verdict = (
        "the best is ahead beyond test noise"
        if p < stats.ALPHA and low > 0
        else "not distinguishable at this scale"
    )
    return f"{head} (95% CI {_interval(low, high)}, {name} p {stats.p_text(p)}): {verdict}."


def _difference(best: pd.Series, other: pd.Series):
    """(low, high, p, test name) of best - other in points, or None without a test."""
    a, b = best["correct"], other["correct"]
    if best["n"] == 1 and other["n"] == 1 and a is not None and b is not None:
        if len(a) != len(b):
            return None
        return (*stats.mcnemar_difference(a, b), "exact McNemar")
    if best["n"] >= 2 and other["n"] >= 2:
        pairs = min(best["n"], other["n"])
        if best["n"] == other["n"]:  # the same seeds, run for each configuration
            found = stats.paired_difference(other["samples"][:pairs], best["samples"][:pairs])
            if math.isnan(found["p"]):
                return None
            return (found["ci_low"], found["ci_high"], found["p"], "paired t over seeds")
        found = stats.welch_difference(other["samples"], best["samples"])
        return None if found is None else (*found, "Welch t")
    return None


def _why_no_test(best: pd.Series, other: pd.Series) -> str:
    if best["n"] == 1 or other["n"] == 1:
        if best["correct"] is None or other["correct"] is None:
            return "one run each and no saved predictions to pair"
        return "one run against several seeds"
    return "the seeds' accuracies do not vary"


def _study(run: Run, best: pd.Series, keys: list[str]) -> str | None:
    """The study's number for the best configuration: the difference and its interval."""
    from tune_mnist.analysis.design_tables import reference_of
    from tune_mnist.analysis.study import study_vs_run

    try:
        reference = reference_of(run.meta)
    except TuneMnistError:
        return None
    if reference is None:
        return None
    match = [k for k in keys if k in reference]
    if not match:
        return None
    found = study_vs_run(reference, best.to_frame().T, match)
    if found.empty:
        return "The study has no number for this configuration."
    published = float(found["study (%)"].iloc[0])
    if run.meta.smoke:
        return f"The study reports {published:.2f}% for it at full scale: not comparable."
    low, high = best["ci_low"] - published, best["ci_high"] - published
    diff = best["mean"] - published
    where = (
        "consistent with the study"
        if low <= 0 <= high
        else "below the study"
        if high < 0
        else "above the study"
    )
    return (
        f"The study reports {published:.2f}%: this run is {diff:+.2f} points from it "
        f"(95% CI {_interval(low, high)}): {where}."
    )


def _run_phrase(run: Run, finished: int) -> str:
    meta = run.meta
    scale = "on " + _data_phrase(meta)  # the images it used, not a word for them
    if meta.smoke:
        epochs = "1 epoch per trial, " if meta.trainable != "svm" else ""
        scale = f"smoke scale ({epochs}{_data_phrase(meta)})"
    date = (meta.started_at or "")[:10]
    return (
        f"{meta.name}: {finished} of {len(run.results)} trials finished, {scale}"
        + (f", {date}" if date else "")
        + (f", on {machine}" if (machine := _machine(meta.provenance)) else "")
        + "."
    )


def _data_phrase(meta) -> str:
    """The images the trials trained and were tested on: '60,000 train / 10,000 test
    images each' (or per dataset when they differ)."""
    sizes = {(d.train, d.test) for d in meta.data.values()}
    if len(sizes) == 1:
        ((train, test),) = sizes
        each = " each" if len(meta.data) > 1 else ""
        return f"{train:,} train / {test:,} test images{each}"
    return (
        ", ".join(
            f"{DATASET_NAMES.get(n, n)} {d.train:,} / {d.test:,}" for n, d in meta.data.items()
        )
        + " train / test images"
    )


def _machine(provenance: dict) -> str | None:
    machine = provenance.get("machine") if isinstance(provenance, dict) else None
    if not isinstance(machine, dict):
        return None
    cpu = machine.get("cpu") or {}
    text = f"{cpu.get('model', 'a CPU')}, {cpu.get('logical_cpus', '?')} CPUs"
    if cpu.get("torch_capability"):
        text += f" ({cpu['torch_capability']})"
    gpus = (machine.get("gpu") or {}).get("devices") or []
    if gpus:
        text += f" and {len(gpus)} GPU ({', '.join(dict.fromkeys(map(str, gpus)))})"
    return text


def _caveats(run: Run, findings: list[Finding]) -> list[str]:
    caveats = []
    if run.meta.smoke:
        caveats.append("a smoke run checks the pipeline on a small sample, not the study's numbers")
    shared = numbers(run.results, "shared_node_fraction")
    from tune_mnist.analysis.table import CONTENDED

    contended = int((shared > CONTENDED).sum())
    if contended:
        caveats.append(
            f"{contended} trials trained beside other work for more than {CONTENDED:.0%} of "
            "their time: their train times are not speed figures"
        )
    gaps = [f for f in findings if f.study and "from it" in f.study and "consistent" not in f.study]
    if gaps:
        names = ", ".join(DATASET_NAMES.get(f.dataset, f.dataset) for f in gaps)
        caveats.append(
            f"{names}: the best configuration differs from the study's number beyond this "
            "run's interval (a reproduction gap; the study's table has every row)"
        )
    return caveats
