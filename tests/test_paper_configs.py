"""The ``*-paper`` configs follow the D2SP paper wherever it speaks, say which choices are
ours, and the ``[pretrained]`` extra's pins agree with the torch range the package declares."""

import re
from pathlib import Path

import pytest

from d2sp.commands.common import packaged_config
from d2sp.config import load_config
from d2sp.training.checks import validate_config

ROOT = Path(__file__).resolve().parents[1]

# the paper's settings: 200 epochs of SGD with momentum 0.9, 16 frames per clip, a frame encoder
# from ImageNet weights, and its thresholds (MAFW has none of its own: DFEW's)
PAPER = {
    "dfew": dict(lam=0.6, tau=0.4, t=2),
    "ferv39k": dict(lam=0.7, tau=0.2, t=3),
    "mafw": dict(lam=0.6, tau=0.4, t=2),
}
OURS = ("warm-up", "schedule", "batch size", "MLP", "image size")  # where the paper is silent


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_configs_follow_the_paper(name):
    cfg = load_config(packaged_config(f"{name}-paper"))
    assert cfg.purify.mode == "paper"
    assert {k: cfg.purify.options[k] for k in PAPER[name]} == PAPER[name]
    assert cfg.optim.epochs == 200 and cfg.optim.momentum == 0.9
    assert cfg.data.num_frames == 16 and cfg.data.dataset == name
    assert cfg.model.pretrained == "imagenet"
    validate_config(cfg)  # a schedule on which the mode decides, a known backbone


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_configs_say_which_choices_are_ours(name):
    text = Path(packaged_config(f"{name}-paper")).read_text(encoding="utf-8")
    head = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    assert "Ours, not the paper's" in head
    for choice in OURS:
        assert choice in head, f"{name}-paper.yaml: expected its comment to name {choice!r} as ours"
    assert "docs/paper.md" in head


def test_the_demo_stays_a_demo():
    cfg = load_config(packaged_config("demo-paper"))
    assert cfg.data.dataset == "synthdfer" and cfg.model.pretrained is None
    assert cfg.optim.epochs == load_config(packaged_config("demo")).optim.epochs


def test_docs_hold_the_reference_table_with_sources():
    text = (ROOT / "docs" / "paper.md").read_text(encoding="utf-8")
    assert "2406.16473" in text  # the paper
    for figure in ("65.70", "53.69", "46.85", "37.20"):  # Former-DFER on DFEW and FERV39k
        assert figure in text
    assert "not available" in text.lower()  # says plainly which of the paper's figures are missing


# ---- the [pretrained] extra against the torch range --------------------------------------------


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _spec(requirements: list[str], name: str):
    requirement = pytest.importorskip("packaging.requirements")
    found = [requirement.Requirement(r) for r in requirements]
    specs = [r.specifier for r in found if r.name == name]
    assert specs, f"pyproject.toml: expected a {name} requirement, got {requirements}"
    return specs[0]


def test_the_pretrained_extra_admits_torchvision_for_every_declared_torch():
    """torchvision 0.(m + 15) is built for torch 2.m: the extra's torchvision range must admit
    the release for every torch 2.m the package admits (up to the one installed here) and none
    built for a torch below that range."""
    project = _pyproject()["project"]
    torch_spec = _spec(project["dependencies"], "torch")
    vision_spec = _spec(project["optional-dependencies"]["pretrained"], "torchvision")
    import torch

    installed = int(re.match(r"2\.(\d+)", torch.__version__).group(1))
    admitted = [m for m in range(0, installed + 3) if torch_spec.contains(f"2.{m}.0")]
    assert admitted and admitted[0] >= 1
    for m in admitted:
        assert vision_spec.contains(f"0.{m + 15}.0"), (
            f"torchvision {vision_spec}: expected to admit 0.{m + 15} (built for torch 2.{m}, "
            f"which torch {torch_spec} admits)"
        )
    below = admitted[0] - 1
    assert not vision_spec.contains(f"0.{below + 15}.0"), (
        f"torchvision {vision_spec}: admits 0.{below + 15}, built for torch 2.{below}, "
        f"outside torch {torch_spec}"
    )


def test_the_missing_extra_error_gives_an_install_line_that_keeps_torch(monkeypatch):
    import sys

    import torch

    from d2sp.models import create_model
    from d2sp.models.pretrained_sources import PretrainedUnavailableError, install_line

    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(PretrainedUnavailableError) as err:
        create_model("r18_lstm", num_classes=3, width=4, lstm_hidden=8, pretrained="imagenet")
    line = install_line()
    assert line in str(err.value)
    assert f"torch=={torch.__version__}" in line and "d2sp[pretrained]" in line
    docs = (ROOT / "docs" / "backbones.md").read_text(encoding="utf-8")
    assert "d2sp[pretrained]" in docs and "torch==$(python -c" in docs


def test_the_install_line_adds_the_index_of_a_local_torch_build():
    from d2sp.models.pretrained_sources import install_line

    assert install_line("2.5.1") == "pip install 'd2sp[pretrained]' 'torch==2.5.1'"
    assert install_line("2.13.0+cpu") == (
        "pip install 'd2sp[pretrained]' 'torch==2.13.0+cpu' "
        "--extra-index-url https://download.pytorch.org/whl/cpu"
    )
    assert install_line("2.6.0+cu126").endswith("/whl/cu126")
