"""The public API: every name the package documents imports from ``d2sp`` itself, options are
keyword-only, and ``import d2sp`` leaves the trainer unloaded until it is asked for."""

import inspect
import re
import subprocess
import sys

import pytest

import d2sp


def test_the_documented_names_import_from_the_package_root():
    shown = re.findall(r"from d2sp import ([\w, ]+)", d2sp.__doc__)
    documented = {name.strip() for line in shown for name in line.split(",")}
    assert {"train", "load_config", "create_model", "create_purifier"} <= documented
    assert documented <= set(d2sp.__all__)
    for name in d2sp.__all__:
        assert getattr(d2sp, name) is not None, name
    from d2sp import evaluate_run, load_config, predict_clips, train  # noqa: F401

    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        d2sp.nonesuch  # noqa: B018


@pytest.mark.parametrize(
    "name",
    ["train", "evaluate_run", "predict_clips", "export_run", "write_report", "run_folds",
     "read_run", "load_run_model", "create_model", "create_dataset", "create_purifier"],
)  # fmt: skip
def test_options_are_keyword_only(name):
    params = inspect.signature(getattr(d2sp, name)).parameters.values()
    positional_defaults = [
        p.name for p in params if p.default is not p.empty and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    assert not positional_defaults, f"{name}: pass {positional_defaults} by keyword"


@pytest.mark.slow
def test_importing_the_package_leaves_the_trainer_unloaded():
    code = "import sys, d2sp; print(sorted(m for m in ('d2sp.training.fit', 'torchmetrics') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
