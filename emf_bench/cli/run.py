"""`emf-bench run` (the whole study, one command) and `emf-bench report RUN_DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emf_bench.cli.options import (
    TRAINING,
    Common,
    FirstShare,
    FirstTasks,
    common_options,
    results_console,
    split_names,
    world_options,
)
from emf_bench.errors import in_range
from emf_bench.study import DEFAULT_PROFILE, PROFILES


def run_command(
    profile: Annotated[str, typer.Option(
        "--profile", help="; ".join(f"{p.name}: {p.brief}" for p in PROFILES.values())
        + " (the study prints its estimated time first).")] = DEFAULT_PROFILE,
    encoder: Annotated[list[str] | None, typer.Option(
        "--encoder", "-e", help="Also score and probe this encoder (repeatable).",
        show_default=False)] = None,
    budget: Annotated[str | None, typer.Option(
        "--budget", help="Override the profile's training budget per probe: steps (3000steps) "
        "give the same numbers on any machine; a time (4m) trains what the machine manages "
        "in it, and probes of unequal steps are flagged next to the verdict.",
        show_default=False)] = None,
    guidance: Annotated[float | None, typer.Option(
        "--guidance", help="Override the profile's sampling-time guidance (1: none, one network "
        "evaluation per step; the MeanFlow probes carry the guidance trained into them either "
        "way; EMF also reports guided sampling).", show_default=False)] = None,
    first_tasks: FirstTasks = None,
    first_share: FirstShare = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", help="Train and evaluate up to this many probes at once, each in its "
        "own process with its share of the --threads \\[default: one probe per physical core "
        "on a CPU, where small probes use one thread best; 1 on a GPU, where --jobs 3 keeps an "
        "H200 busier]. The thread count a probe trains with is part of its numbers.",
        show_default=False)] = None,
    report: Annotated[bool, typer.Option("--report/--no-report",
                                         help="Write report.html at the end.")] = True,
    common: Common = None,
    world=None,
) -> None:
    """The whole study on the built-in world, in one command.

    Encoder scores, MeanFlow probes and a flow-matching baseline, world-GenEval and world-DPG
    at 1/2/4/N steps, the HTML report. A second run after an interruption finishes only the
    missing work.
    """

    from emf_bench import study as study_module
    from emf_bench.rundir import host_info
    from emf_bench.storage import atomic_write_json

    chosen = study_module.profile(profile, budget, guidance,
                                  None if first_tasks is None else split_names(first_tasks),
                                  first_share)
    extra = tuple(dict.fromkeys(encoder or []))
    study_module.check_encoders(extra, common.encoders_dir)
    if jobs is not None:
        in_range("--jobs", jobs, 1)
    run = common.run(f"study-{chosen.name}")
    study = study_module.Study(chosen, run.path, world.to_dict(), extra, common.encoders_dir,
                               common.device, common.cache_dir, common.seed, jobs,
                               common.precision, common.threads)
    settings = {"profile": chosen.to_dict(), "extra_encoders": list(extra),
                "world": world.to_dict(), "device": common.device, "jobs": jobs,
                "precision": common.precision, "threads": common.threads}
    with run.invocation("run", settings, common.seed) as entry:
        result = study.run()
        entry["result"] = result
        meta = {"profile": chosen.name, "description": chosen.description,
                "settings": chosen.to_dict(), "jobs": jobs, **study.times(),
                "notes": study.notes, "host": host_info(), **result}
        atomic_write_json(run.path / "study.json", meta)
    html = None
    if report:  # after the invocation closed, so the report shows the run as finished
        from emf_bench.reporting.report import build_report

        html = build_report(run.path)
    print_study(run.path, study.notes, html, meta)


def print_study(run_path: Path, notes: list[str], html: Path | None, meta: dict) -> None:
    from rich.table import Table

    from emf_bench.reporting import collect
    from emf_bench.reporting.report import headline, paper_step_ratio
    from emf_bench.reporting.verdict import checks, unequal_training

    console = results_console()
    encoders = collect.encoder_table(run_path)
    evals = collect.evaluations(run_path)
    study = collect.study_table(run_path, encoders, evals)
    top = headline(study)
    if not top.empty:
        table = Table(title="world-GenEval overall per probe, 95% bootstrap intervals over "
                      "prompts (world-exact detector; probes, not real generators)")
        for column in top.columns:
            table.add_column(str(column))
        for row in top.itertuples(index=False):
            table.add_row(*(("n/a" if v != v else f"{v:.3f}") if isinstance(v, float)
                            else str(v) for v in row))
        console.print(table)
        console.print(paper_step_ratio())
    for x in ("discriminability", "disentanglement"):
        c = collect.rank_correlation(study, x)
        if c and c.get("rho") is not None:
            console.print(f"Spearman rho({x}, 1-step score) = {c['rho']:.2f} "
                          f"(p = {c['p']:.2f}, n = {c['n']})")
        elif c:
            console.print(f"rank correlation of {x}: {c['note']}")
    unfair = unequal_training(collect.probe_table(collect.probes(run_path)))
    if unfair:
        console.print(f"warning: {unfair}", style="bold red")
    for c in checks(study, evals):
        style = "green" if c["verdict"] == "shown" else "yellow"
        console.print(f"{c['verdict']}: {c['claim']} ({c['evidence']})", style=style)
    for note in notes:
        console.print(f"note: {note}")
    took = f"{meta['seconds'] / 60:.1f} min"
    if meta["runs"] > 1:
        took += f" over {meta['runs']} runs (this one {meta['this_run_seconds'] / 60:.1f})"
    console.print(f"study finished in {took}; results in {run_path}"
                  + (f"; report: {html}" if html else ""))


def report_command(
    run_dirs: Annotated[list[Path], typer.Argument(
        help="Run directories (from run, eval, train-probe or encoders score); several make "
        "one comparison.", show_default=False)],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="HTML file \\[default: RUN_DIR/report.html; several runs: "
        "comparison.html].", show_default=False)] = None,
    results: Annotated[Path | None, typer.Option(
        "--results", help="Also export (or merge) the runs into a results tree, MTEB-style: "
        "DIR/<model>/<revision>/<benchmark>.json and model_meta.json.",
        show_default=False)] = None,
) -> None:
    """A self-contained HTML report of a run directory, or one comparison of several.

    One run: tables (CSV, Parquet) and figures (PNG) go beside it in RUN_DIR/report/. Several:
    their evaluations in one table (OUT's stem/comparison.csv and .parquet) and one
    score-vs-steps plot per group of runs scored alike; runs scored differently are kept apart.
    """
    from emf_bench.inputs import output_file

    if out is not None:
        output_file(out, "--out", (".html", ".htm"))
    if len(run_dirs) == 1:
        from emf_bench.reporting.report import build_report

        html = build_report(run_dirs[0], out)
        typer.echo(f"wrote {html} (tables and figures in {run_dirs[0] / 'report'})")
    else:
        from emf_bench.reporting.compare import compare_runs

        html, problems = compare_runs(run_dirs, out or Path("comparison.html"))
        for problem in problems:
            typer.echo(f"note: not included: {problem}", err=True)
        typer.echo(f"wrote {html} (tables in {html.parent / html.stem})")
    if results is not None:
        from emf_bench.reporting.results_tree import export

        written, problems = export(run_dirs, results)
        for problem in problems:
            typer.echo(f"note: not exported: {problem}", err=True)
        typer.echo(f"results tree: {len(written)} files in {results}")


def register(app: typer.Typer) -> None:
    app.command("run")(world_options(common_options(*TRAINING)(run_command)))
    app.command("report")(report_command)
