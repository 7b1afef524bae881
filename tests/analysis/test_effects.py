"""Factor effects on hand-made designs with known answers, checked against statsmodels."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as scipy_stats
from statsmodels.stats.anova import anova_lm

from tune_mnist.analysis.effects import design_effects

FACTORS = ["model", "batch_size", "optimizer", "lr", "epochs", "pin_memory"]
Q2 = """r18,16,adam,0.001,5,True / r18,16,adam,0.001,15,False / r18,16,adam,0.001,15,True /
r18,16,adam,0.0001,5,False / r18,16,adam,0.0001,5,True / r34,16,sgd,0.001,5,True /
r34,16,adam,0.001,5,True / r34,32,sgd,0.001,5,True / r34,32,adam,0.001,5,True /
r50,16,sgd,0.001,5,True"""
NAMES = {
    "model": {"r18": "ResNet-18", "r34": "ResNet-34", "r50": "ResNet-50"},
    "optimizer": {"adam": "Adam", "sgd": "SGD"},
}
# small, fixed departures from "ResNet-18 is 20 points better, nothing else matters"
WOBBLE = [0.3, -0.2, 0.1, -0.4, 0.2, 0.5, -0.1, -0.3, 0.2, -0.3]


def q2_design() -> pd.DataFrame:
    rows = [row.strip().split(",") for row in Q2.split("/")]
    frame = pd.DataFrame(rows, columns=FACTORS).astype({"batch_size": int, "lr": float})
    frame["epochs"] = frame["epochs"].astype(int)
    frame["pin_memory"] = frame["pin_memory"] == "True"
    frame["acc"] = np.where(frame["model"] == "r18", 90.0, 70.0) + WOBBLE
    frame["seed"] = 0
    return frame


def contrast(effects, factor, text=None):
    rows = effects.contrasts[effects.contrasts["factor"] == factor]
    if text is not None:
        rows = rows[rows["contrast"] == text]
    assert len(rows) == 1, effects.contrasts
    return rows.iloc[0]


def treatment_fit(frame, factors, response="acc"):
    formula = f"{response} ~ " + " + ".join(f"C({f})" for f in factors)
    return smf.ols(formula, data=frame).fit()


def test_q2_nested_factors_are_compared_inside_resnet18_only():
    frame = q2_design()
    effects = design_effects(frame, FACTORS, "acc", names=NAMES)
    fit = treatment_fit(frame, FACTORS)
    assert effects.residual_df == fit.df_resid == 2
    pin = contrast(effects, "pin_memory")
    assert pin["contrast"] == "True - False"
    assert pin["estimate"] == pytest.approx(fit.params["C(pin_memory)[T.True]"])
    low, high = fit.conf_int().loc["C(pin_memory)[T.True]"]
    assert (pin["ci_low"], pin["ci_high"]) == pytest.approx((low, high))
    assert abs(pin["estimate"]) < 1  # not the -20 of "ResNet-18 vs the rest"
    assert pin["within"] == "ResNet-18 / batch_size 16 / Adam"
    epochs = contrast(effects, "epochs")
    assert epochs["contrast"] == "15 - 5"
    assert epochs["within"] == "ResNet-18 / batch_size 16 / Adam / lr 0.001"
    assert epochs["estimate"] == pytest.approx(fit.params["C(epochs)[T.15]"])
    r34 = contrast(effects, "model", "ResNet-34 - ResNet-18")
    assert r34["estimate"] == pytest.approx(fit.params["C(model)[T.r34]"])
    assert r34["estimate"] == pytest.approx(-20, abs=1.5)
    assert any(
        note.startswith("pin_memory compared only within ResNet-18 / batch_size 16 / Adam")
        for note in effects.notes
    )
    assert effects.design_points == 10 and effects.observations == 10


def test_q2_inert_factors_are_left_out_and_identical_runs_count_once():
    inert = {"pin_memory": "every trial trained on the CPU", "epochs": "1 epoch (--smoke)"}
    effects = design_effects(q2_design(), FACTORS, "acc", inert, [*FACTORS, "seed"], NAMES)
    assert set(effects.contrasts["factor"]) == {"model", "batch_size", "optimizer", "lr"}
    assert "pin_memory" not in set(effects.joint["factor"]) | set(effects.levels["factor"])
    assert (
        "pin_memory left out: it could not act (every trial trained on the CPU); "
        "no effect is estimated." in effects.notes
    )
    assert any(
        note.startswith("epochs left out: it could not act (1 epoch") for note in effects.notes
    )
    # rows 1-3 are one computation, rows 4-5 another: 7 design points, 7 observations
    assert effects.design_points == 7 and effects.observations == 7
    assert any(note.startswith("10 trials are 7 distinct computations") for note in effects.notes)
    collapsed = q2_design().drop(columns=["epochs", "pin_memory"])
    collapsed = collapsed.groupby(["model", "batch_size", "optimizer", "lr"], as_index=False)[
        "acc"
    ].mean()
    fit = treatment_fit(collapsed, ["model", "batch_size", "optimizer", "lr"])
    assert effects.residual_df == fit.df_resid == 1
    lr = contrast(effects, "lr")
    assert lr["estimate"] == pytest.approx(fit.params["C(lr)[T.0.001]"])


def half_fraction(repeats: int) -> pd.DataFrame:
    rows = [(a, b, a * b) for a, b in itertools.product([-1, 1], repeat=2)]
    frame = pd.DataFrame(rows * repeats, columns=["lr", "optimizer", "batch_size"])
    frame["acc"] = 80 + 2 * frame["lr"] - 1 * frame["optimizer"] + np.arange(len(frame)) % 3
    return frame


def test_half_fraction_names_the_aliasing_and_estimates_main_effects():
    frame = half_fraction(repeats=2)
    effects = design_effects(frame, ["lr", "optimizer", "batch_size"], "acc")
    assert (
        "lr, optimizer and batch_size: each main effect is confounded with the interaction "
        "of the other two (the estimates assume those interactions are zero)."
    ) in effects.notes
    assert effects.contrasts["factor"].tolist() == ["lr", "optimizer", "batch_size"]
    assert contrast(effects, "lr")["confounded"] == "optimizer x batch_size"
    fit = treatment_fit(frame, ["lr", "optimizer", "batch_size"])
    assert contrast(effects, "optimizer")["estimate"] == pytest.approx(
        fit.params["C(optimizer)[T.1]"]
    )
    assert effects.residual_df == 4


def test_saturated_design_gives_estimates_without_intervals():
    effects = design_effects(half_fraction(repeats=1), ["lr", "optimizer", "batch_size"], "acc")
    assert effects.residual_df == 0
    assert effects.contrasts["estimate"].notna().all()
    assert effects.contrasts[["ci_low", "ci_high", "p"]].isna().all().all()
    assert effects.joint[["F", "p"]].isna().all().all()
    assert any(note.startswith("No residual degrees of freedom") for note in effects.notes)


def test_factors_that_always_change_together_are_one_effect():
    frame = half_fraction(repeats=2).drop(columns="batch_size")
    frame["epochs"] = np.where(frame["lr"] == 1, 15, 5)
    effects = design_effects(frame, ["lr", "epochs", "optimizer"], "acc")
    assert "lr and epochs always change together: one effect, reported as lr." in effects.notes
    assert effects.contrasts["factor"].tolist() == ["lr", "optimizer"]
    assert contrast(effects, "lr")["confounded"] == "epochs"


def test_full_factorial_equals_ols_and_difference_of_means():
    grid = list(itertools.product([16, 32], ["adam", "sgd"], [0.01, 0.1])) * 2
    frame = pd.DataFrame(grid, columns=["batch_size", "optimizer", "lr"])
    noise = np.array(
        [0.4, -0.3, 0.1, 0.2, -0.5, 0.3, -0.1, 0.0, 0.2, -0.2, 0.5, -0.4, 0, 0.1, 0, -0.3]
    )
    frame["acc"] = 90 - 3 * (frame["optimizer"] == "sgd") + 1 * (frame["lr"] == 0.1) + noise
    effects = design_effects(frame, ["batch_size", "optimizer", "lr"], "acc")
    fit = treatment_fit(frame, ["batch_size", "optimizer", "lr"])
    for factor, term in [
        ("batch_size", "C(batch_size)[T.32]"),
        ("optimizer", "C(optimizer)[T.sgd]"),
        ("lr", "C(lr)[T.0.1]"),
    ]:
        row = contrast(effects, factor)
        assert row["estimate"] == pytest.approx(fit.params[term])
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(fit.conf_int().loc[term]))
        assert row["p"] == pytest.approx(fit.pvalues[term])
        assert row["within"] == "" and row["confounded"] == ""
    means = frame.groupby("optimizer")["acc"].mean()
    assert contrast(effects, "optimizer")["estimate"] == pytest.approx(means["sgd"] - means["adam"])
    assert effects.residual_df == 16 - 4
    levels = effects.levels.set_index(["factor", "level"])["estimate"]
    assert levels[("optimizer", "sgd")] == pytest.approx(means["sgd"])  # balanced: the raw mean
    assert not any("compared only within" in note for note in effects.notes)


def test_duplicate_computations_change_neither_estimates_nor_df():
    grid = list(itertools.product(["adam", "sgd"], [0.01, 0.1])) * 2
    frame = pd.DataFrame(grid, columns=["optimizer", "lr"])
    frame["seed"] = [0] * 4 + [1] * 4
    frame["acc"] = [90, 91, 86, 88, 90.5, 91.8, 86.3, 87.6]
    keys = ["optimizer", "lr", "seed"]
    once = design_effects(frame, ["optimizer", "lr"], "acc", same_computation=keys)
    twice = design_effects(
        pd.concat([frame, frame.iloc[[2]]]), ["optimizer", "lr"], "acc", same_computation=keys
    )
    pd.testing.assert_frame_equal(once.contrasts, twice.contrasts)
    assert once.residual_df == twice.residual_df == 8 - 3
    assert twice.observations == 8 and twice.design_points == 4
    assert any(note.startswith("9 trials are 8 distinct computations") for note in twice.notes)


def test_three_level_factor_joint_f_equals_anova_and_pairs_are_holm_adjusted():
    grid = list(itertools.product(["r18", "r34", "r50"], ["adam", "sgd"])) * 2
    frame = pd.DataFrame(grid, columns=["model", "optimizer"])
    frame["acc"] = [91, 88, 90, 86.5, 89, 87, 91.6, 88.4, 89.2, 87.1, 88.3, 86.2]
    effects = design_effects(frame, ["model", "optimizer"], "acc", names=NAMES)
    fit = treatment_fit(frame, ["model", "optimizer"])
    table = anova_lm(fit, typ=2)
    joint = effects.joint.set_index("factor")
    assert joint.loc["model", "F"] == pytest.approx(table.loc["C(model)", "F"])
    assert joint.loc["model", "p"] == pytest.approx(table.loc["C(model)", "PR(>F)"])
    assert joint.loc["model", "df"] == 2 and joint.loc["model", "levels"] == 3
    pairs = fit.t_test_pairwise("C(model)", method="holm").result_frame
    r50 = contrast(effects, "model", "ResNet-50 - ResNet-18")
    assert r50["estimate"] == pytest.approx(pairs.loc["r50-r18", "coef"])
    assert r50["p"] == pytest.approx(pairs.loc["r50-r18", "pvalue-holm"])
    half = (r50["ci_high"] - r50["ci_low"]) / 2  # Bonferroni over 3 pairs
    se = pairs.loc["r50-r18", "std err"]
    assert half == pytest.approx(scipy_stats.t.ppf(1 - 0.05 / 6, fit.df_resid) * se)
    assert len(effects.contrasts[effects.contrasts["factor"] == "model"]) == 3


def test_exact_fit_claims_nothing():
    grid = list(itertools.product(["adam", "sgd"], [0.01, 0.1])) * 2
    frame = pd.DataFrame(grid, columns=["optimizer", "lr"])
    frame["acc"] = 90 - 2 * (frame["optimizer"] == "sgd") + (frame["lr"] == 0.1)
    effects = design_effects(frame, ["optimizer", "lr"], "acc")
    assert contrast(effects, "optimizer")["estimate"] == pytest.approx(-2)
    assert math.isnan(contrast(effects, "optimizer")["p"])
    assert any("no residual spread" in note for note in effects.notes)


def test_constant_factor_and_missing_response_are_noted():
    frame = pd.DataFrame(
        {"optimizer": ["adam", "sgd", "adam", "sgd"], "lr": [0.1] * 4, "acc": [1.0, 2, 1.5, None]}
    )
    effects = design_effects(frame, ["optimizer", "lr"], "acc")
    assert "1 trial(s) without acc left out." in effects.notes
    assert "lr is 0.1 throughout: no effect." in effects.notes
    assert effects.contrasts["factor"].tolist() == ["optimizer"]


def test_factor_fixed_by_another_is_not_estimated():
    frame = pd.DataFrame(
        {
            "model": ["r18", "r34", "r50"] * 2,
            "optimizer": ["adam", "sgd", "sgd"] * 2,  # each model ran with one optimizer
            "acc": [1, 2, 3, 1.1, 2.2, 2.9],
        }
    )
    effects = design_effects(frame, ["model", "optimizer"], "acc")
    assert (
        "optimizer cannot be told apart from model: its changes always come with theirs, "
        "so it is not estimated."
    ) in effects.notes
    assert set(effects.contrasts["factor"]) == {"model"}
    assert set(effects.contrasts["confounded"]) == {"optimizer"}
    # listed the other way round, only the comparison inside one optimizer survives
    other = design_effects(frame, ["optimizer", "model"], "acc")
    assert other.contrasts["contrast"].tolist() == ["r50 - r34"]
    assert other.contrasts["within"].tolist() == ["optimizer sgd"]
    assert other.joint[["F", "p"]].isna().all().all()  # no joint test of half-estimable factors


def test_an_additive_model_that_fails_its_lack_of_fit_reports_cell_means_not_effects():
    """Issue 28 item 14: batch size costs 28 points with Adam and 3 with SGD; the additive
    model's one batch effect would average them. Its lack of fit against the seeds' spread
    is significant: no main effect, the cell means instead (F checked with statsmodels)."""
    noise = {0: -0.2, 1: 0.0, 2: 0.3}
    rows = [
        {
            "optimizer": opt,
            "batch_size": bs,
            "seed": seed,
            "acc": 90.0 - (28.0 if opt == "adam" else 3.0) * (bs == 32) + noise[seed],
        }
        for opt in ("adam", "sgd")
        for bs in (16, 32)
        for seed in (0, 1, 2)
    ]
    frame = pd.DataFrame(rows)
    found = design_effects(frame, ["optimizer", "batch_size"], "acc", same_computation=None)
    additive = smf.ols("acc ~ C(optimizer) + C(batch_size)", frame).fit()
    saturated = smf.ols("acc ~ C(optimizer) * C(batch_size)", frame).fit()
    expected = anova_lm(additive, saturated).iloc[1]
    assert found.lack_of_fit.f_value == pytest.approx(expected["F"])
    assert found.lack_of_fit.p == pytest.approx(expected["Pr(>F)"])
    assert (found.lack_of_fit.df_model, found.lack_of_fit.df_error) == (1, 8)
    assert found.contrasts.empty and found.joint.empty
    assert any("the factors interact, so no main effect is reported" in n for n in found.notes)
    cells = found.cells.set_index(["optimizer", "batch_size"])
    assert cells.loc[("adam", 32), "mean"] == pytest.approx(90.0 - 28.0 + 0.1 / 3)
    assert list(cells["n"]) == [3, 3, 3, 3]


def test_an_additive_model_that_fits_keeps_its_main_effects():
    rows = [
        {"optimizer": o, "batch_size": b, "seed": s, "acc": 90 - 3 * (b == 32) + 0.1 * s}
        for o in ("adam", "sgd")
        for b in (16, 32)
        for s in (0, 1, 2)
    ]
    found = design_effects(pd.DataFrame(rows), ["optimizer", "batch_size"], "acc")
    assert found.cells is None and not found.contrasts.empty
    assert found.lack_of_fit is None or found.lack_of_fit.p >= 0.05
