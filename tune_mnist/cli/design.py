"""`tune-mnist design`: designs read and augmented before anything runs."""

from __future__ import annotations

from typing import Annotated

import typer

from tune_mnist.cli.common import SpaceArg, app, out, user_errors

design_app = typer.Typer(help="Designs written as rows: read them, augment them.")
app.add_typer(design_app, name="design")


@design_app.command()
def foldover(
    space: SpaceArg,
    on: Annotated[
        list[str] | None,
        typer.Option(
            "--on",
            help="Fold on these factors only (repeatable); default: every factor the rows vary.",
        ),
    ] = None,
) -> None:
    """Print the fold-over rows of a space's design, and what the combined design separates.

    Folding on every factor frees main effects from two-factor interactions; folding on
    one factor (--on epochs) separates it from what it was aliased with. Add the printed
    rows to the space's `rows:` and run them with `tune-mnist sweep SPACE --extend EXP`.
    """
    import pandas as pd
    import yaml

    from tune_mnist.analysis.aliasing import fold_over, read_design
    from tune_mnist.analysis.table import FACTORS
    from tune_mnist.errors import TuneMnistError
    from tune_mnist.spec.spaces import load_space

    with user_errors():
        spec = load_space(space)
        rows = pd.DataFrame(spec.space.rows)
        design = read_design(rows, FACTORS) if len(rows) else None
        if design is None:
            raise TuneMnistError(f"{spec.source}: no two-level design in its rows to fold over")
        folding = on or design.factors
        if unknown := [f for f in folding if f not in design.factors]:
            raise TuneMnistError(
                f"--on {unknown[0]}: not a factor of the design ({', '.join(design.factors)})"
            )
        added = fold_over(rows, folding)
        combined = read_design(pd.concat([rows, added], ignore_index=True), FACTORS)
    records = [{k: v for k, v in r.items() if pd.notna(v)} for r in added.to_dict("records")]
    out.print(f"# {len(records)} fold-over rows of {spec.name} on {', '.join(folding)}:")
    out.print(yaml.safe_dump({"rows": records}, sort_keys=False, default_flow_style=None), end="")
    out.print("# the combined design:")
    for line in combined.describe():
        out.print(f"# {line}", highlight=False)
