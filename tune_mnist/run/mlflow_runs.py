"""The Tune callback that logs each trial to MLflow (tracking.py has the rest).

A module of its own because Ray's MLflowLoggerCallback imports mlflow when it is imported:
only sweeps that log to MLflow load it.
"""

from __future__ import annotations

from ray.air.integrations.mlflow import MLflowLoggerCallback


class TrialRuns(MLflowLoggerCallback):
    """Ray Tune's MLflowLoggerCallback, naming each nested run after its trial's label."""

    def log_trial_start(self, trial) -> None:
        if trial not in self._trial_runs:
            from tune_mnist.spec.configs import trial_from_dict

            label = trial_from_dict(trial.config["trial"]).label
            tags = {**self.tags, "trial_name": str(trial)}
            self._trial_runs[trial] = self.mlflow_util.start_run(
                tags=tags, run_name=label
            ).info.run_id
        super().log_trial_start(trial)
