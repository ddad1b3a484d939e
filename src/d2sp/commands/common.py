"""What the commands share: the console, the error exit, and config resolution."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from d2sp.config import ConfigError, RunConfig, load_config

console = Console(soft_wrap=True)  # long lines stay whole in logs (no wrap at 80 columns)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` (as plain text) and exit with ``code`` (no traceback)."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def packaged_config(name: str) -> Path:
    """Path of a YAML config shipped with the package (``demo``, ``dfew``, ...)."""
    path = resources.files("d2sp") / "configs" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.name[:-5] for p in (resources.files("d2sp") / "configs").iterdir())
        raise ConfigError(f"no packaged config {name!r}; known: {', '.join(known)}")
    return Path(str(path))


def resolve_config(config: str | None, overrides: list[str] | None, flags: dict | None = None) -> RunConfig:
    """The run config of ``-c`` (a YAML file or a packaged name), command-line flags
    (``{"data.root": value}``, None values skipped) and ``key=value`` overrides, in that order."""
    path = None
    if config is not None:
        path = Path(config) if Path(config).suffix in (".yaml", ".yml") else packaged_config(config)
    extra = [f"{k}={v}" for k, v in (flags or {}).items() if v is not None]
    return load_config(path, [*extra, *(overrides or [])])


def run_flags(
    *, dataset=None, root=None, fold=None, model=None, pretrained=None, epochs=None,
    name=None, out_dir=None, skip_bad=None,
) -> dict:
    """The config keys of the shortcut flags that ``train``, ``ablate`` and ``compare``
    share (``--root`` is ``data.root``, ...), for :func:`resolve_config`."""
    return {
        "data.dataset": dataset, "data.root": root, "data.fold": fold, "model.name": model,
        "model.pretrained": pretrained, "optim.epochs": epochs, "name": name,
        "out_dir": out_dir, "data.skip_bad": None if skip_bad is None else str(skip_bad).lower(),
    }  # fmt: skip


def flag_overrides(flags: dict, overrides: list[str] | None = None) -> list[str]:
    """``key=value`` of the flags that were given, then ``overrides``."""
    return [f"{k}={v}" for k, v in flags.items() if v is not None] + list(overrides or [])


def parse_list(text: str, kind, option: str) -> list:
    """Comma-separated values of ``kind`` (int, float or str); ValueError naming ``option``."""
    names = {int: "integers such as 0,1,2", float: "numbers such as 0.5,0.6", str: "names"}
    items = [x.strip() for x in text.split(",") if x.strip()]
    try:
        if not items:
            raise ValueError
        return [kind(x) for x in items]
    except ValueError:
        raise ValueError(
            f"{option}: expected comma-separated {names.get(kind, kind.__name__)}, got {text!r}"
        ) from None
