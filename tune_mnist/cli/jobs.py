"""The cluster commands: submit a sweep as a Ray Job, list, follow and stop jobs. They
register on the app (cli/common.py); the work is in run/jobs.py."""

from __future__ import annotations

import shlex
import time
from typing import Annotated

import pandas as pd
import typer

from tune_mnist.cli.common import SpaceArg, app, print_frame, say, user_errors
from tune_mnist.errors import TuneMnistError

JobAddressOpt = Annotated[
    str | None,
    typer.Option(
        envvar="RAY_API_SERVER_ADDRESS",
        help="The cluster's job server: its dashboard's URL, e.g. http://HEAD:8265.",
    ),
]
JobArg = Annotated[str, typer.Argument(help="A job id, as `submit` printed it.")]
# sweep options a job cannot take: the driver joins the cluster it runs on
_NOT_FOR_JOBS = {"space", "address", "insecure", "dashboard"}


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def submit(
    ctx: typer.Context,
    space: SpaceArg,
    address: JobAddressOpt = None,
    ship: Annotated[
        bool,
        typer.Option(
            help="Send this machine's tune_mnist package with the job (for a cluster whose "
            "image has the dependencies but not this tune-mnist); else the image's runs."
        ),
    ] = False,
    follow: Annotated[
        bool, typer.Option(help="Print the job's output until it ends; exit as the sweep did.")
    ] = False,
) -> None:
    """Run a sweep's driver on a Ray cluster as a Ray Job and return; the laptop can go.

    Takes any option of `tune-mnist sweep` after SPACE. --storage-path is required: an
    absolute folder on the cluster (one every node mounts) or a URI; --data-dir, when
    given, is the cluster's too. A space file is sent with the job. To continue a stopped
    job, submit the same command again with --resume.
    """
    with user_errors():
        options, storage, name, spec_name = _sweep_options(ctx, space)
        from tune_mnist.run.jobs import submit as submit_job

        experiment = f"{storage.rstrip('/')}/{name}"
        resume = shlex.join(["tune-mnist", "submit", space, *options])
        if "--resume" not in options:
            resume += " --resume"
        if address:
            resume += f" --address {shlex.quote(address)}"
        sent = submit_job(address, space, spec_name, options, experiment, ship, resume)
    say(f"submitted job {sent.job_id}" + (" (package shipped)" if sent.shipped else ""))
    say(f"the cluster runs: {sent.entrypoint}")
    say(f"results: {sent.experiment}")
    where = f" --address {address}" if address else ""
    say(f"follow: tune-mnist logs {sent.job_id} --follow{where}")
    say(f"stop:   tune-mnist stop {sent.job_id}{where}")
    if follow:
        _follow(address, sent.job_id)


def _sweep_options(ctx: typer.Context, space: str) -> tuple[list[str], str, str, str]:
    """The sweep's options as parsed by `sweep` itself, rebuilt as arguments (only the ones
    given on the command line: this machine's environment variables stay here); the
    storage path; the experiment's name; the space's name. Checks what it can here."""
    from tune_mnist.run.jobs import cluster_path
    from tune_mnist.spec.selection import select
    from tune_mnist.spec.spaces import load_space, with_repeats
    from tune_mnist.store.settings import check_name

    command = typer.main.get_command(app)
    sweep = command.get_command(ctx.parent or ctx, "sweep")
    try:
        parsed = sweep.make_context("sweep", [space, *ctx.args], parent=ctx.parent)
    except Exception as e:  # Click's usage errors (Typer's own copy of Click)
        if not hasattr(e, "format_message"):
            raise
        raise TuneMnistError(f"sweep options: {e.format_message()}") from None
    given = {
        p.name: parsed.params[p.name]
        for p in sweep.params
        if parsed.get_parameter_source(p.name).name == "COMMANDLINE"
    }
    if not_here := sorted(given.keys() & (_NOT_FOR_JOBS - {"space"})):
        raise TuneMnistError(f"--{not_here[0]}: not for a job (it runs on the cluster's Ray)")
    storage = given.get("storage_path")
    if storage is None:
        raise TuneMnistError(
            "submit needs --storage-path: where the job writes on the cluster (an absolute "
            "folder that every node mounts, or a URI)"
        )
    storage = cluster_path(str(storage), "--storage-path")
    if given.get("data_dir") is not None:
        cluster_path(str(given["data_dir"]), "--data-dir")
    spec = load_space(space, given.get("trial_limit") or parsed.params["trial_limit"])
    if given.get("repeats"):
        spec = with_repeats(spec, given["repeats"], parsed.params["trial_limit"])
    spec = select(spec, list(given.get("where") or []), list(given.get("trial") or []))
    name = given.get("name") or (f"{spec.name}-smoke" if given.get("smoke") else spec.name)
    check_name(name, "--name" if given.get("name") else "the space's name")
    options = []
    for param in sweep.params:
        if param.name in given and param.name not in _NOT_FOR_JOBS:
            options += _as_arguments(param, given[param.name])
    return options, storage, name, spec.name


def _as_arguments(param, value) -> list[str]:
    """One parsed option back as command-line arguments."""
    if getattr(param, "is_flag", False):
        if value:
            return [param.opts[0]]
        return [param.secondary_opts[0]] if param.secondary_opts else []
    values = value if getattr(param, "multiple", False) else [value]
    arguments = []
    for one in values:
        shown = one.value if hasattr(one, "value") else one
        arguments += [param.opts[0], str(shown)]  # a Path as given; numbers as typed
    return arguments


@app.command()
def jobs(address: JobAddressOpt = None) -> None:
    """List this tool's jobs on a cluster, oldest first, with their state."""
    from tune_mnist.run.jobs import list_jobs

    with user_errors():
        found = list_jobs(address)
    if not found:
        say("no tune-mnist jobs on this cluster")
        return
    rows = [
        {
            "job": j.job_id,
            "state": j.status,
            "space": j.space,
            "experiment": j.experiment,
            "started": _when(j.start_time),
            "ran": _ran(j.start_time, j.end_time),
        }
        for j in found
    ]
    print_frame(pd.DataFrame(rows), title=f"{len(rows)} tune-mnist job(s)")


@app.command()
def logs(
    job: JobArg,
    address: JobAddressOpt = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing until the job ends; exit as it did."),
    ] = False,
) -> None:
    """Print a job's output (the sweep's lines); --follow it to the end."""
    from tune_mnist.run.jobs import job_logs

    if follow:
        _follow(address, job)
        return
    with user_errors():
        text = job_logs(address, job)
    typer.echo(text, nl=False)


@app.command()
def stop(job: JobArg, address: JobAddressOpt = None) -> None:
    """Stop a job: Tune stops its trials and saves the experiment, which stays resumable."""
    from tune_mnist.run.jobs import stop_job

    with user_errors():
        info = stop_job(address, job)
    say(f"job {info.job_id}: {info.status}")
    if info.status != "STOPPED":  # it had ended already, or has not stopped yet
        return
    if info.experiment:
        say(f"{info.experiment} keeps what finished; `tune-mnist status` reads it")
    if info.resume:
        say(f"continue with: {info.resume}")


def _follow(address: str | None, job_id: str) -> None:
    """Print a job's output as it comes; exit with the code its sweep exited with."""
    from tune_mnist.run.jobs import follow_logs, job_info

    with user_errors():
        try:
            for chunk in follow_logs(address, job_id):
                typer.echo(chunk, nl=False)
        except KeyboardInterrupt:
            say(f"stopped following; the job goes on (`tune-mnist logs {job_id} --follow`)")
            raise typer.Exit(130) from None
        info = job_info(address, job_id)
        for _ in range(20):  # the log stream can close a moment before the state is final
            if info.finished:
                break
            time.sleep(0.5)
            info = job_info(address, job_id)
    say(f"job {job_id}: {info.status}")
    raise typer.Exit(info.cli_exit_code)


def _when(seconds: float | None) -> str | None:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else None


def _ran(start: float | None, end: float | None) -> str | None:
    from tune_mnist.analysis.status import format_duration

    return format_duration((end or time.time()) - start) if start else None
