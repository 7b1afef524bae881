"""The `tune-mnist` command: parse options, call the library, print the data it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from tune_mnist.cli.common import (
    AddressOpt,
    CompileMode,
    DashboardOpt,
    InsecureOpt,
    JsonOpt,
    LimitOpt,
    SpaceArg,
    SVMBackend,
    SVMBackendOpt,
    TrialOpt,
    TrustOpt,
    VerboseOpt,
    WhereOpt,
    app,
    interruptible,
    loopback_if_local,
    out,
    print_frame,
    progress,
    say,
    user_errors,
)
from tune_mnist.cli.summary import print_summary
from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import (
    DEFAULT_SVM_BACKEND,
    TrainOptions,
    short_model,
    trial_to_dict,
)
from tune_mnist.spec.selection import select
from tune_mnist.spec.spaces import TRIAL_LIMIT, builtin_names, load_space, trial_count, with_repeats
from tune_mnist.store.opened import locate
from tune_mnist.store.settings import SweepSettings


@app.command()
def spaces(json_output: JsonOpt = False) -> None:
    """List the built-in search spaces and how many trials each one runs."""
    rows = []
    for name in builtin_names():
        spec = load_space(name)
        rows.append(
            {
                "space": name,
                "trainable": spec.space.trainable,
                "trials": trial_count(spec.space),  # a search: the trials it samples
                "description": spec.space.description,
            }
        )
    if json_output:
        import json

        print(json.dumps(rows, indent=2))
        return
    print_frame(pd.DataFrame(rows))


@app.command()
def show(
    space: SpaceArg,
    where: WhereOpt = None,
    trial: TrialOpt = None,
    trial_limit: LimitOpt = TRIAL_LIMIT,
    svm_backend: SVMBackendOpt = DEFAULT_SVM_BACKEND,
    plan_from: Annotated[
        str | None,
        typer.Option(
            help="A pilot experiment (2+ seeds per configuration): print how many repeats "
            "a comparison needs to detect --detect points (power 0.8, alpha 0.05)."
        ),
    ] = None,
    detect: Annotated[
        float, typer.Option(help="The difference to detect with --plan-from, in points.")
    ] = 0.5,
) -> None:
    """Print a space's expanded trials and the resources each will ask for; trains nothing.

    It imports the space's own model and trainable files (and builds each model once) to
    check them, as a sweep would: show only spaces whose files you trust.
    """
    from tune_mnist.train.checks import check_space

    with user_errors():
        spec = select(load_space(space, trial_limit), where or [], trial or [])
        check_space(spec)  # own models import and fit their data; own datasets read
        plans = _plans(plan_from, detect) if plan_from else []
    search = spec.search
    if search and search.samples:
        _show_search(spec)
        return
    # one column per config field (a custom trainable's keys too)
    frame = pd.DataFrame([trial_to_dict(t) for t in spec.trials]).drop(columns="trainable")
    for key in ("model", "function"):  # a file reference by its file's name, not its path
        if key in frame:
            frame[key] = frame[key].map(short_model)
    if spec.trainable == "svm":
        frame, budget = _svm_memory(frame, SVMBackend(svm_backend).value)
    numbers = spec.selection.chosen if spec.selection else range(1, len(frame) + 1)
    frame.insert(0, "#", list(numbers))
    title = f"{spec.name}: {len(spec.trials)} trials ({spec.source})"
    if spec.selection:
        title = f"{spec.name}: {len(spec.trials)} of {spec.selection.of} trials ({spec.source})"
    print_frame(frame, title=title)
    if spec.space.rows:  # a design written as rows: what it can and cannot separate
        from tune_mnist.analysis.aliasing import read_design
        from tune_mnist.analysis.table import FACTORS

        if design := read_design(pd.DataFrame(spec.space.rows), FACTORS):
            for line in design.describe():
                out.print(line, highlight=False)
    for plan in plans:
        out.print(f"Repeats, from {plan_from}: {plan.describe()}", highlight=False)
    asked = spec.space.resources
    if spec.trainable != "svm":
        out.print(
            f"Each trial asks for {asked.gpu:g} GPU on a cluster with GPUs, "
            f"else {asked.cpu:g} CPU (override with --gpus-per-trial)."
        )
    else:
        out.print(
            "Each trial asks for CPUs (--svm-cpus, default 1), never a GPU, and for the memory "
            f"shown: estimated for the full datasets against {budget}; "
            "`tune-mnist cluster SPACE` plans for a cluster's nodes."
        )


def _plans(pilot: str, detect: float) -> list:
    """The repeats a comparison needs, planned from a pilot experiment (planning.py)."""
    from tune_mnist.analysis.configurations import config_keys
    from tune_mnist.analysis.planning import plan_repeats
    from tune_mnist.store.opened import open_experiment
    from tune_mnist.store.results import load_experiment

    loaded = load_experiment(open_experiment(pilot))
    return plan_repeats(loaded.results, config_keys(loaded.meta, loaded.results), detect)


def _show_search(spec) -> None:
    """A sampled search: its grid with each distribution in words, and what it runs."""
    from tune_mnist.spec.search import overview
    from tune_mnist.spec.spaces import grid_configurations

    search, grid = spec.search, grid_configurations(spec.space)
    # flat dicts: a custom trainable's params are keys as a ResNet's lr is (not a dict)
    frame = pd.DataFrame([trial_to_dict(t) for t in spec.trials]).drop(columns="trainable")
    for key, distribution in search.distributions.items():
        frame[key] = distribution.describe()
    frame = frame.drop_duplicates().reset_index(drop=True)
    for key in ("model", "function"):  # a file reference by its file's name, not its path
        if key in frame:
            frame[key] = frame[key].map(short_model)
    count = search.trial_count(grid)
    print_frame(frame, title=f"{spec.name}: {count} trials, sampled ({spec.source})")
    for line in overview(search, grid):
        out.print(line, highlight=False)


def _svm_memory(frame: pd.DataFrame, backend: str) -> tuple[pd.DataFrame, str]:
    """Each SVM trial's backend and Ray memory request on this machine; the budget, said."""
    from tune_mnist.train.svm import FULL_SIZES, SAFETY, GiB, available_budget, request_memory

    budget = available_budget()
    train, test, pixels = FULL_SIZES
    choices = [
        request_memory(backend, min(n, train), test, pixels, budget) for n in frame["train_samples"]
    ]
    return frame.assign(
        backend=[c.backend + ("" if c.fits else " (does not fit)") for c in choices],
        **{"memory (GiB)": [round(c.estimate.bytes / GiB, 2) for c in choices]},
    ), f"{budget / GiB:.1f} GiB ({SAFETY:.0%} of this machine's available memory)"


@app.command()
def sweep(
    space: SpaceArg,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="TUNE_MNIST_DATA",
            help="Folder with <dataset>/ IDX files (or torchvision's layout).",
        ),
    ] = None,
    smoke: Annotated[
        bool,
        typer.Option(
            help="1,000/500 images per dataset, 1 epoch per trial: a fast end-to-end check."
        ),
    ] = False,
    address: AddressOpt = None,
    insecure: InsecureOpt = False,
    dashboard: DashboardOpt = False,
    storage_path: Annotated[
        str | None,
        typer.Option(
            envvar="TUNE_MNIST_RESULTS",
            help="Where experiments live: a folder (default: ./ray_results) or s3://BUCKET/PREFIX.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Experiment name (default: the space's).")
    ] = None,
    gpus_per_trial: Annotated[
        float | None, typer.Option(help="GPU fraction per ResNet trial (default: the space's).")
    ] = None,
    svm_cpus: Annotated[float, typer.Option(min=0.01, help="CPUs per SVM trial.")] = 1.0,
    svm_backend: SVMBackendOpt = DEFAULT_SVM_BACKEND,
    max_failures: Annotated[
        int, typer.Option(min=0, help="Retries of a failed trial, from its last checkpoint.")
    ] = 2,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted sweep of this name.")
    ] = False,
    repeats: Annotated[
        int | None, typer.Option(min=1, help="Seeds per configuration (default: the space's).")
    ] = None,
    preload: Annotated[
        bool, typer.Option(help="Keep each dataset on the GPU (pin_memory is then moot).")
    ] = False,
    compile: Annotated[
        CompileMode | None,
        typer.Option(help="torch.compile ResNets in this mode (default: eager)."),
    ] = None,
    where: WhereOpt = None,
    trial: TrialOpt = None,
    trial_limit: LimitOpt = TRIAL_LIMIT,
    trust: TrustOpt = False,
    mlflow: Annotated[
        bool,
        typer.Option(help="Log to MLflow: the server at --mlflow-uri, else $MLFLOW_TRACKING_URI."),
    ] = False,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(help="Log the sweep to this MLflow tracking server (implies --mlflow)."),
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(help="Stop after this much wall-clock time (90s, 30m, 2h), over resumes."),
    ] = None,
    max_trials: Annotated[
        int | None, typer.Option(help="Start at most N trials: the first N `show` lists.")
    ] = None,
    max_gpu_hours: Annotated[
        float | None,
        typer.Option(help="Stop once trials used this many GPU-hours (train time x GPU share)."),
    ] = None,
    extend: Annotated[
        Path | None,
        typer.Option(
            help="Add the space's new trials to this experiment, reusing its finished ones."
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run a search space (or the part of it chosen by --where / --trial) on Ray Tune and
    print and write its tables."""
    loopback_if_local(address, insecure)
    from tune_mnist.run.sweep import (
        run_sweep,  # Ray and torch load only for the commands that need them
    )
    from tune_mnist.run.tracking import resolve_uri
    from tune_mnist.spec.budget import make_budget

    with user_errors(verbose):
        budget = make_budget(time_budget, max_trials, max_gpu_hours)
        if extend and resume:
            raise TuneMnistError("--extend starts a new run: continue one with `tune-mnist resume`")
        spec = load_space(space, trial_limit)
        if repeats:
            spec = with_repeats(spec, repeats, trial_limit)
        spec = select(spec, where or [], trial or [])
        settings = SweepSettings(
            data_dir=str(data_dir) if data_dir else None,
            smoke=smoke,
            address=address,
            storage_path=storage_path or None,
            name=name,
            gpus_per_trial=gpus_per_trial,
            svm_cpus=svm_cpus,
            svm_backend=SVMBackend(svm_backend).value,
            max_failures=max_failures,
            resume=resume,
            trust=trust,
            verbose=verbose,
            dashboard=dashboard,
            mlflow=resolve_uri(mlflow, mlflow_uri),
            options=TrainOptions(preload=preload, compile=compile.value if compile else None),
        )
        part = f" of {spec.selection.of} ({spec.selection.describe()})" if spec.selection else ""
        count = trial_count(spec.space) if spec.search and spec.search.samples else len(spec.trials)
        out.print(f"{spec.name}: {count}{part} trials" + (" (smoke)" if smoke else ""))
        if extend:
            where = extend.absolute()
        else:
            where = settings.experiment_uri(spec.name) or settings.experiment_dir(spec.name)
        with interruptible(where), progress() as (say, view):
            result = run_sweep(
                spec, settings, on_event=say, budget=budget, extend=extend, view=view
            )
    out.print(f"peak concurrency: {result.peak_running} trials")
    print_summary(result.summary, after_sweep=True)


@app.command()
def resume(
    experiment_dir: Annotated[
        str, typer.Argument(help="An interrupted experiment: its folder or s3:// URI.")
    ],
    address: AddressOpt = None,
    insecure: InsecureOpt = False,
    dashboard: DashboardOpt = False,
    trust: TrustOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Continue an interrupted sweep: unfinished and failed trials go on from their checkpoints.

    Uses the space and settings saved in the experiment; finished trials are not rerun, and
    a budget (--time-budget, --max-trials, --max-gpu-hours) goes on with what is left of it.
    """
    loopback_if_local(address, insecure)
    from tune_mnist.run.sweep import resume_sweep

    located = locate(experiment_dir)
    where = located.uri or located.folder.absolute()
    with user_errors(verbose), interruptible(where), progress() as (say, view):
        result = resume_sweep(
            experiment_dir,
            address,
            verbose,
            on_event=say,
            trust=trust,
            view=view,
            dashboard=dashboard,
        )
    print_summary(result.summary, after_sweep=True)


@app.command()
def cluster(
    space: Annotated[
        str | None, typer.Argument(help="Also say where this space's trials go.")
    ] = None,
    address: AddressOpt = None,
    insecure: InsecureOpt = False,
    gpus_per_trial: Annotated[
        float | None, typer.Option(help="GPU fraction per ResNet trial.")
    ] = None,
    svm_cpus: Annotated[float, typer.Option(min=0.01, help="CPUs per SVM trial.")] = 1.0,
    svm_backend: SVMBackendOpt = DEFAULT_SVM_BACKEND,
    verbose: VerboseOpt = False,
) -> None:
    """Print the cluster's nodes and resources, and where a space's trials would run.

    SVM trials are planned for the full datasets (60,000 / 10,000 images).
    """
    loopback_if_local(address, insecure)
    from tune_mnist.run.cluster import inspect_cluster

    with user_errors(verbose):
        spec = load_space(space) if space else None
        settings = SweepSettings(
            address=address,
            gpus_per_trial=gpus_per_trial,
            svm_cpus=svm_cpus,
            svm_backend=SVMBackend(svm_backend).value,
            verbose=verbose,
        )
        view = inspect_cluster(spec, settings)
    nodes, placement = view.nodes, view.placement
    shown = nodes.assign(
        node_id=nodes["node_id"].str[:12],
        memory=(nodes["memory"] / 2**30).round(1),
        custom=nodes["custom"].map(lambda c: ", ".join(f"{k}={v:g}" for k, v in c.items())),
    )
    print_frame(shown.rename(columns={"memory": "memory (GiB)"}), title=f"{len(nodes)} node(s)")
    if placement:
        say(placement.describe() + ": " + ", ".join(n[:12] for n in placement.nodes))
        for (dataset, samples), choice in placement.svm.items():
            say(
                f"  {dataset}, {samples:,} images: {choice.estimate.bytes / 2**30:.2f} GiB "
                f"({choice.reason})"
            )


# The experiment and cluster commands register on `app` when imported; imported last so
# that --help lists the everyday commands above them.
from tune_mnist.cli import design, experiments, jobs  # noqa: E402, F401
