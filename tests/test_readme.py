"""The README's two commands are the ones CI runs and the ones a new user copies."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(doc: str = "README.md") -> list[str]:
    text = (ROOT / doc).read_text()
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_starts_with_install_and_run_then_install_and_test():
    main_job, tests = _bash_blocks()[:2]
    for command in (main_job, tests):
        assert command.startswith("python3 -m venv .venv")
        assert "pip install -c constraints.txt" in command  # torch stays pinned
    assert "emf-bench " in main_job
    assert tests.endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    tests = _bash_blocks()[1]
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_constraints_pin_torch_and_default_install_has_no_torchvision():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().split()
    pyproject = (ROOT / "pyproject.toml").read_text()
    dependencies = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert "torchvision" not in dependencies and "open_clip" not in dependencies


def _examples() -> list[list[str]]:
    """Every `emf-bench ...` command line of the README's and the guide's examples,
    continuations joined."""
    import shlex

    lines = []
    for block in _bash_blocks("README.md") + _bash_blocks("docs/guide.md"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("emf-bench "):
                lines.append(shlex.split(line)[1:])
    return lines


def test_every_documented_example_names_a_real_command_and_real_options():
    import typer

    from emf_bench.cli.app import app

    examples = _examples()
    assert len(examples) >= 20
    for args in examples:
        command = typer.main.get_command(app)
        words = list(args)
        while hasattr(command, "commands"):  # walk the groups down to the command
            name = words.pop(0)
            assert name in command.commands, f"docs: no command {name!r} in {args}"
            command = command.commands[name]
        known = {opt for p in command.params for opt in p.opts}
        for word in words:
            if word.startswith("-"):
                assert word.split("=", 1)[0] in known, f"docs: {word} is not an option of {args}"
