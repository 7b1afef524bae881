"""What one sweep process hands Ray Tune: every trial of the experiment, its Tune runs
(the one this process runs last), and the metadata it was read back from."""

from __future__ import annotations

from dataclasses import dataclass

from tune_mnist.spec.spaces import Spec
from tune_mnist.store.experiment import (
    ExperimentMeta,
    TuneRun,
)


@dataclass(frozen=True)
class RunPlan:
    """What this process hands Tune, and the experiment around it."""

    spec: Spec  # every trial of the experiment, in its saved order
    runs: list[TuneRun]  # the experiment's Tune runs, the one this process runs last
    version: int  # of the metadata: how the param_space is laid out
    old: ExperimentMeta | None = None  # the metadata read back (resume, --extend)

    @property
    def run(self) -> TuneRun:
        return self.runs[-1]

    @property
    def tune_trials(self) -> list:
        """The trials of this Tune run (--max-trials keeps the first; --extend the new)."""
        return self.spec.trials if self.run.trials is None else self.run.trials
