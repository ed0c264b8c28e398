"""The demo's endpoints as tools for agents: gradio's MCP server (`launch(mcp_server=True)`) turns each
named endpoint into a tool, named after its function, its inputs named after the function's parameters,
described by the function's docstring (the lines before `Args:`, then each `Returns:` line). So every
endpoint function gets a plain name, one parameter per input the agent fills in (`review`, or a
multi-field model's columns, not gradio's `param_0` for `*fields`) and a docstring that says what
comes back. The same names serve gradio_client's keyword arguments.

Whether the demo serves MCP at all (`mcp_server_enabled`): the --mcp_server flag, else gradio's own
GRADIO_MCP_SERVER variable, else on in a Hugging Face Space where the `mcp` package is installed
(requirements.txt installs it there; measured cost: README, "The Space as a tool for agents").
"""

import importlib.util
import inspect
import os
import re
from typing import Callable

REVIEW_PARAMETER = "review"  # the one input of a single-field model's review tools


def tool(fn: Callable, name: str, summary: str, args: dict[str, str], returns: list[str]) -> Callable:
    """`fn` under `name`, taking the parameters named in `args` (in order, each a text), documented for MCP."""

    def endpoint(*values):
        return fn(*values)

    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__signature__ = inspect.Signature(
        [inspect.Parameter(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str) for arg in args])
    endpoint.__doc__ = docstring(summary, args, returns)
    return endpoint


def docstring(summary: str, args: dict[str, str], returns: list[str]) -> str:
    """The layout gradio's utils.get_function_description parses: one `name: text` line per argument and one
    line per returned value (it joins those into the tool's description)."""
    lines = [summary]
    if args:
        lines += ["", "Args:", *(f"    {name}: {text}" for name, text in args.items())]
    if returns:
        lines += ["", "Returns:", *(f"    {text}" for text in returns)]
    return "\n".join(lines)


def review_args(fields: list[str], what: str) -> dict[str, str]:
    """The review tools' parameters: `review` for a one-field model, else one per field, named after its column."""
    if len(fields) == 1:
        return {REVIEW_PARAMETER: what}
    names = parameter_names(fields)
    return {name: f"the review's {field!r} field ({i + 1} of {len(fields)}, as in training)"
            for i, (name, field) in enumerate(zip(names, fields))}


def parameter_names(fields: list[str]) -> list[str]:
    """Column names as Python identifiers (a signature needs them): 'Review title' -> 'Review_title'; unique."""
    names: list[str] = []
    for field in fields:
        name = re.sub(r"\W", "_", field.strip()) or "field"
        name = f"_{name}" if name[0].isdigit() else name
        while name in names:
            name += "_"
        names.append(name)
    return names


def mcp_server_enabled(flag: bool | None) -> bool:
    """--mcp_server/--no-mcp_server if given, else GRADIO_MCP_SERVER, else: in a Space (SPACE_ID is set there)
    when the `mcp` package is installed. Off by default elsewhere: a local demo needs no agents."""
    installed = importlib.util.find_spec("mcp") is not None
    if flag is not None or "GRADIO_MCP_SERVER" in os.environ:
        wanted = flag if flag is not None else os.environ["GRADIO_MCP_SERVER"].strip().lower() == "true"
        if wanted and not installed:  # gradio would stop with a traceback and `pip install "gradio[mcp]"`
            asked = "--mcp_server" if flag else "GRADIO_MCP_SERVER=true"
            raise SystemExit(f"error: {asked} needs the mcp package, which is not installed. Install it as "
                             "requirements.txt pins it (pip install -r requirements.txt), or leave the MCP server off.")
        return wanted
    return bool(os.environ.get("SPACE_ID")) and installed
