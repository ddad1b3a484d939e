"""``data.workers: auto``: the loader processes follow the machine, resolved at run time."""

import os

import pytest
import yaml

from d2sp.commands.common import packaged_config
from d2sp.config import ConfigError, RunConfig, load_config, resolve_workers


def test_auto_is_the_default_and_resolves_to_the_cpus(monkeypatch):
    assert RunConfig().data.workers == "auto"
    for cpus, want in [(1, 0), (2, 1), (4, 3), (64, 8), (None, 0)]:
        monkeypatch.setattr(os, "cpu_count", lambda c=cpus: c)
        assert resolve_workers("auto") == want
    assert resolve_workers(3) == 3


@pytest.mark.parametrize("name", ["dfew", "ferv39k", "mafw"])
def test_packaged_configs_ask_for_auto_and_demo_keeps_zero(name):
    assert yaml.safe_load(packaged_config(name).read_text())["data"]["workers"] == "auto"
    assert load_config(packaged_config(name)).data.workers == "auto"
    assert load_config(packaged_config("demo")).data.workers == 0


def test_explicit_integers_stay_and_nonsense_is_refused():
    assert load_config(None, ["data.workers=5"]).data.workers == 5
    for bad in ("data.workers=-1", "data.workers=many", "data.workers=1.5", "data.workers=true"):
        with pytest.raises(ConfigError, match="data.workers: expected auto or an integer >= 0"):
            load_config(None, [bad])


def test_a_run_with_auto_workers_trains(tmp_path, synth_root, monkeypatch):
    from d2sp.training import train
    from tests.conftest import tiny_config

    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # auto -> 0 worker processes here
    cfg = tiny_config(tmp_path, synth_root, "name=auto", "data.workers=auto", "optim.epochs=1",
                      "purify.mode=ce")  # fmt: skip
    result = train(cfg, progress=False)
    saved = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())
    assert saved["data"]["workers"] == "auto"
    assert 0 <= result.war <= 1
