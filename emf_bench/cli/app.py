"""The Typer app and `main`, which turns user mistakes into one line and exit code 2.

Exit codes: 0 success, 2 bad input (one line naming what and where; traceback with --debug),
1 internal failure (traceback), 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

try:  # recent Typer vendors its own click, whose exceptions are not `click`'s
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - Typer on plain click
    from click import exceptions as click_errors

from emf_bench.cli import eval as eval_cli
from emf_bench.cli import probe
from emf_bench.cli import run as run_cli
from emf_bench.cli.encoders import encoders_app
from emf_bench.cli.world import world_app
from emf_bench.errors import EmfBenchError

app = typer.Typer(
    name="emf-bench",
    help="Will this text encoder work for one-step (MeanFlow) text-to-image generation? "
    "Encoder metrics, MeanFlow probes, GenEval/DPG-Bench at 1/2/4/N steps, reports.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(world_app, name="world")
app.add_typer(encoders_app, name="encoders")
probe.register(app)
eval_cli.register(app)
run_cli.register(app)


def _version(value: bool) -> None:
    if value:
        from emf_bench import __version__

        typer.echo(f"emf-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug",
                               help="Show tracebacks for user errors too (any position)."),
    verbose: bool = typer.Option(False, "--verbose",
                                 help="Show the libraries' own load reports and logs "
                                 "(transformers, diffusers; any position)."),
) -> None:
    """emf-bench command line."""


def _error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def _terminate_as_interrupt() -> None:
    """SIGTERM (a scheduler's kill, `timeout`) ends a command like Ctrl-C: the manifest records
    the run as interrupted and finished work stays, instead of a silent death."""
    import signal
    import threading

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("EMF_BENCH_DEBUG"))
    args = [a for a in args if a != "--debug"]
    if "--verbose" in args:
        os.environ["EMF_BENCH_VERBOSE"] = "1"
        args = [a for a in args if a != "--verbose"]
    command = typer.main.get_command(app)
    _terminate_as_interrupt()
    finished = False
    try:
        result = command.main(args=args, prog_name="emf-bench", standalone_mode=False)
        finished = True
    except click_errors.NoArgsIsHelpError as err:
        typer.echo(err.ctx.get_help() if err.ctx else "")
        return 0
    except click_errors.UsageError as err:
        where = f" (see '{err.ctx.command_path} --help')" if err.ctx else ""
        _error(f"{err.format_message()}{where}")
        if debug:
            traceback.print_exc()
        return 2
    except click_errors.ClickException as err:
        _error(err.format_message())
        return err.exit_code
    except EmfBenchError as err:
        if debug:
            traceback.print_exc()
        _error(str(err).splitlines()[0] if str(err) else type(err).__name__)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        _error("interrupted; finished work is kept and a re-run resumes")
        return 130
    except Exception:
        traceback.print_exc()
        _error("internal error (a bug in emf-bench); the traceback above says where")
        return 1
    finally:
        from emf_bench import distributed

        distributed.shutdown(wait=finished)  # a no-op outside torchrun
    if result == 130:  # Typer turns KeyboardInterrupt into a silent Exit(130)
        _error("interrupted; finished work is kept and a re-run resumes")
    return result if isinstance(result, int) else 0
