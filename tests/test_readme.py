"""The commands README.md and the docs give are valid: DVC accepts every `dvc exp run -S` override (each point of a
queued sweep) and the result validates; every `pipeline` command names a command and options that exist; README is
short and reaches the common tasks in one link."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
import typer
from dvc.utils.hydra import apply_overrides, get_hydra_sweeps, to_hydra_overrides

from pipeline.cli.main import app
from pipeline.config.params import load_params

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shell_blocks(page: Path, languages: str = "sh") -> list[str]:
    """The text of a page's fenced blocks in these languages (`sh`, or `sh|console`)."""
    return re.findall(rf"```(?:{languages})\n(.*?)```", page.read_text(), flags=re.DOTALL)


def command_lines(languages: str = "sh") -> list[str]:
    """Every command line of every page's shell blocks, continuation lines joined, a console block's `$ ` dropped."""
    blocks = [block for page in PAGES for block in shell_blocks(page, languages)]
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line.removeprefix("$ ") for line in lines if line.strip() and not line.startswith("#")]


def docs_exp_runs() -> list[list[str]]:
    """The arguments of each `dvc exp run` command in the pages' shell blocks."""
    return [shlex.split(line, comments=True) for line in command_lines() if "dvc exp run" in line]


def overrides_of(args: list[str]) -> list[str]:
    """The values of a command's `-S` options."""
    return [args[i + 1] for i, arg in enumerate(args) if arg == "-S"]


def is_sweep(overrides: list[str]) -> bool:
    """Whether DVC reads these overrides as a sweep (`key=a,b`), which it runs only with `--queue`."""
    return any(override.is_sweep_override() for override in to_hydra_overrides(overrides))


def expanded(overrides: list[str]) -> list[list[str]]:
    """The runs a command stands for: one per point of its sweep (`-S 'key=a,b'`, queued), as `dvc exp run` does."""
    if not is_sweep(overrides):
        return [overrides]
    return [point["params.yaml"] for point in get_hydra_sweeps({"params.yaml": overrides})]


COMMANDS = [overrides for args in docs_exp_runs() if (overrides := overrides_of(args))]
RUNS = [point for run in COMMANDS for point in expanded(run)]
SEPARATORS = {"&&", "||", ";", "|", "&"}


def commands_in(line: str) -> list[list[str]]:
    """The simple commands of a shell line, split at `&&`, `||`, `;` and `|`, comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


PIPELINE_CALLS = [
    args[args.index("pipeline") + 1 :]
    for line in command_lines("sh|console")
    for args in commands_in(line)
    if "pipeline" in args and args[0] in ("uv", "pipeline")
]


def test_the_docs_have_exp_run_commands_with_overrides_and_sweeps():
    assert len(COMMANDS) >= 4
    assert ["data.cifar10.source=torchvision"] in COMMANDS  # the classic full-size CIFAR-10 runs: the defaults
    assert len(RUNS) >= len(COMMANDS) + 4  # the queued sweeps


def test_every_sweep_in_the_docs_is_queued():
    sweeps = [args for args in docs_exp_runs() if is_sweep(overrides_of(args))]
    assert sweeps and all("--queue" in args for args in sweeps)


@pytest.mark.parametrize("overrides", RUNS, ids=[" ".join(run)[:60] for run in RUNS])
def test_dvc_applies_the_docs_overrides_to_a_valid_params_file(tmp_path, overrides):
    params_file = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params_file)

    apply_overrides(str(params_file), overrides)

    assert load_params(params_file) == load_params(ROOT / "params.yaml", overrides)


def options_of(command) -> set[str]:
    """Every flag a command takes (`--top`, `-o`, `--no-...`), and `--help`."""
    return {"--help", *(flag for parameter in command.params for flag in [*parameter.opts, *parameter.secondary_opts])}


@pytest.mark.parametrize("args", PIPELINE_CALLS, ids=[" ".join(args)[:60] for args in PIPELINE_CALLS])
def test_every_pipeline_command_in_the_docs_names_a_command_and_options_that_exist(args):
    command, rest = typer.main.get_command(app), list(args)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        assert rest[0] in command.commands, f"no command {rest[0]!r} in `pipeline {' '.join(args)}`"
        command = command.commands[rest.pop(0)]
    flags = {arg.split("=")[0] for arg in rest if arg.startswith("-") and not re.fullmatch(r"-\d.*", arg)}
    assert flags <= options_of(command), f"unknown options {flags - options_of(command)} in `pipeline {' '.join(args)}`"


def test_readme_fits_two_screens_and_links_the_common_tasks_and_existing_pages():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)", text)

    assert len(text.splitlines()) <= 150
    assert {"docs/tutorials/your-own-images.md", "docs/how-to/sweeps-and-seeds.md", "docs/how-to/serve.md"} <= set(links)
    assert all((ROOT / link).is_file() for link in links), [link for link in links if not (ROOT / link).is_file()]
