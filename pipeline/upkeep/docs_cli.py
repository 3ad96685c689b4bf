"""The command-line reference page, generated from the Typer app: every command's usage, help and options.

Typer ships its own copy of click, so the commands and parameters are read by what they have (`commands`,
`param_type_name`), not by click's classes.
"""

import inspect
import re
from typing import Any, Literal, get_args, get_origin

import typer

from pipeline.upkeep.docs_params import type_text

INTRO = (
    "Every `pipeline` command (also `python -m pipeline`), its arguments and options, as `--help` gives them. "
    "Generated from the Typer app by `pipeline dev docs --write`: edit the commands' docstrings and help texts, not "
    "this page."
)


def cli_reference(root: Any) -> str:
    """The whole command-line reference page from the `pipeline` command (the app as click sees it): each command,
    group by group, in the order `--help` lists them."""
    sections = ["# Command-line reference", INTRO]
    sections += [command_section(path, command) for path, command in commands_of(root, "pipeline")]
    return "\n\n".join(sections) + "\n"


def commands_of(command: Any, path: str) -> list[tuple[str, Any]]:
    """Every runnable command under `command`, with its full name (`pipeline dev deps`), depth first."""
    if not hasattr(command, "commands"):
        return [(path, command)]
    found = []
    for name in command.list_commands(typer.Context(command)):
        found += commands_of(command.commands[name], f"{path} {name}")
    return found


def command_section(path: str, command: Any) -> str:
    """One command: its usage line, its help, and a table of its arguments and options."""
    context = typer.Context(command, info_name=path)
    pieces = command.collect_usage_pieces(context)  # arguments as `{model}`: written as --help shows them, MODEL
    usage = re.sub(r"\{(\w+)\}", lambda match: match[1].upper(), " ".join([path, *pieces]))
    help_text = inspect.cleandoc(command.help or "")
    rows = ["| argument or option | type | default | what it does |", "| --- | --- | --- | --- |"]
    rows += [parameter_row(parameter) for parameter in command.params if not getattr(parameter, "hidden", False)]
    parts = [f"## `{path}`", f"```\n{usage}\n```", help_text.replace("\n", " ")]
    if len(rows) > 2:
        parts.append("\n".join(rows))
    return "\n\n".join(part for part in parts if part)


def parameter_row(parameter: Any) -> str:
    """A table row: the argument's name or the option's flags, its type, its default and its help."""
    if parameter.param_type_name == "argument":
        name = f"`{(parameter.name or '').upper()}`" + ("" if parameter.required else " (optional)")
    else:
        name = ", ".join(f"`{flag}`" for flag in [*parameter.opts, *parameter.secondary_opts])
    kind = _type_text(parameter)
    default = "" if parameter.required or parameter.default in (None, (), False) else f"`{_default(parameter)}`"
    help_text = " ".join((getattr(parameter, "help", None) or "").split())
    cells = [name, kind, default, help_text]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _type_text(parameter: Any) -> str:
    if getattr(parameter, "is_flag", False):
        return "flag"
    annotation = parameter.type_descriptor.annotation
    choices = get_args(annotation) if get_origin(annotation) is Literal else ()
    kind = " / ".join(f"`{choice}`" for choice in choices) or type_text(annotation)
    return f"{kind}, repeatable" if getattr(parameter, "multiple", False) else kind


def _default(parameter: Any) -> str:
    value = parameter.default
    return str(getattr(value, "value", value))
