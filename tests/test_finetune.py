"""Optimizer parameter groups: a learning-rate scale for the frame encoder, or freezing it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from d2sp.models import create_model, parameter_groups
from d2sp.purify.losses import weighted_cross_entropy

K = 3
TINY = {
    "img_size": 32,
    "patch_size": 8,
    "width": 32,
    "layers": 1,
    "heads": 4,
    "output_dim": 16,
    "temporal_heads": 2,
}


def tiny_model(name: str = "clip_vit") -> nn.Module:
    torch.manual_seed(0)
    if name == "clip_vit":
        return create_model(name, num_classes=K, **TINY)
    return create_model(name, num_classes=K, width=4, lstm_hidden=8)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    clips = torch.randn(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    logits, w = model(clips)  # (B, K), (B,)
    optimizer.zero_grad()
    weighted_cross_entropy(logits, w, torch.tensor([0, 2])).backward()
    optimizer.step()


@pytest.mark.parametrize("name", ["clip_vit", "r18_lstm"])
def test_encoder_group_gets_scaled_lr(name):
    model = tiny_model(name)
    groups = parameter_groups(model, lr=0.1, encoder_lr_scale=0.001)
    assert [g["name"] for g in groups] == ["rest", "encoder"]
    assert groups[0]["lr"] == 0.1 and groups[1]["lr"] == pytest.approx(1e-4)
    enc = {id(p) for p in model.backbone.encoder.parameters()}
    assert {id(p) for p in groups[1]["params"]} == enc
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each exactly once
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, pytest.approx(1e-4)]
    train_step(model, opt)


def test_scaled_encoder_moves_less():
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(parameter_groups(model, lr=0.1, encoder_lr_scale=1e-3), lr=0.1)
    train_step(model, opt)
    enc_step = (model.backbone.encoder.proj - before["backbone.encoder.proj"]).abs().max()
    grad = model.backbone.encoder.proj.grad.abs().max()
    torch.testing.assert_close(enc_step, 1e-4 * grad)  # plain SGD: step = lr · scale · grad


def test_frozen_encoder_gets_no_grad_and_is_left_out():
    model = tiny_model()
    enc = model.backbone.encoder
    before = {n: p.detach().clone() for n, p in enc.named_parameters()}
    groups = parameter_groups(model, lr=0.1, freeze_encoder=True)
    assert [g["name"] for g in groups] == ["rest"]
    assert all(not p.requires_grad for p in enc.parameters())
    enc_ids = {id(p) for p in enc.parameters()}
    assert not enc_ids & {id(p) for p in groups[0]["params"]}
    opt = torch.optim.SGD(groups, lr=0.1)
    train_step(model, opt)
    for n, p in enc.named_parameters():
        assert p.grad is None, n
        assert torch.equal(p, before[n]), n
    assert model.backbone.temporal.cls_token.grad is not None
    assert model.head.fc.weight.grad is not None


def test_defaults_one_rate_for_all():
    model = tiny_model()
    groups = parameter_groups(model, lr=0.01)
    assert [g["lr"] for g in groups] == [0.01, 0.01]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_wrapped_model_is_looked_through():
    model = tiny_model()
    groups = parameter_groups(nn.DataParallel(model), lr=0.1, encoder_lr_scale=0.5)
    assert {id(p) for p in groups[1]["params"]} == {
        id(p) for p in model.backbone.encoder.parameters()
    }


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"lr": 0}, "lr: expected a finite number > 0, got 0"),
        ({"lr": -0.1}, "lr: expected a finite number > 0, got -0.1"),
        ({"lr": float("nan")}, "lr: expected a finite number > 0, got nan"),
        ({"lr": "0.1"}, "lr: expected a finite number > 0, got '0.1'"),
        (
            {"lr": 0.1, "encoder_lr_scale": 0},
            "encoder_lr_scale: expected a finite number > 0, got 0",
        ),
        ({"lr": 0.1, "encoder_lr_scale": True}, "encoder_lr_scale: expected .*, got True"),
        ({"lr": 0.1, "freeze_encoder": "yes"}, "freeze_encoder: expected true or false, got 'yes'"),
    ],
)
def test_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        parameter_groups(tiny_model("r18_lstm"), **kwargs)


def test_model_without_encoder():
    lin = nn.Linear(4, 2)
    assert [g["name"] for g in parameter_groups(lin, lr=0.1)] == ["encoder"]
    with pytest.raises(ValueError, match="expected a model with a frame encoder"):
        parameter_groups(lin, lr=0.1, encoder_lr_scale=0.1)
    with pytest.raises(ValueError, match="expected a model with a frame encoder"):
        parameter_groups(lin, lr=0.1, freeze_encoder=True)
    assert lin.weight.requires_grad  # a refused freeze changes nothing


# --------------------------------------------------------- fine-tuning from one's own run


def test_a_run_trained_on_dfew_is_fine_tuned_on_mafw_with_another_head(tmp_path):
    from typer.testing import CliRunner

    from d2sp.cli import app
    from tests.conftest import TINY_TREE
    from tests.test_datasets import make_dfew, make_mafw

    def train(dataset, root, name, *extra):
        args = ["train", "--dataset", dataset, "--root", str(root), "--fold", "1", "--name", name,
                "--out-dir", str(tmp_path / "runs"), "--no-progress", *TINY_TREE, *extra]  # fmt: skip
        return CliRunner().invoke(app, args)

    dfew = make_dfew(tmp_path / "DFEW", ((1, 1, 5), (2, 4, 3), (3, 7, 4), (4, 2, 4)))
    assert train("dfew", dfew, "dfew").exit_code == 0
    best = tmp_path / "runs" / "dfew" / "best.pt"
    mafw = make_mafw(tmp_path / "MAFW")
    result = train("mafw", mafw, "mafw", "--pretrained", str(best))
    assert result.exit_code == 0, result.output
    # what the fine-tuning run started from: DFEW's backbone and an 11-class head of its own
    source = torch.load(best, map_location="cpu", weights_only=True)["model"]
    model = create_model("r18_lstm", num_classes=11, width=4, lstm_hidden=8, pretrained=best)
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, source[f"backbone.{key}"], msg=key)
    assert model.head.fc.weight.shape[0] == 11 and source["head.fc.weight"].shape[0] == 7
    again = create_model("r18_lstm", num_classes=11, width=4, lstm_hidden=8,
                         pretrained=tmp_path / "runs" / "dfew")  # fmt: skip
    torch.testing.assert_close(again.backbone.state_dict(), model.backbone.state_dict())

    notes = tmp_path / "some.txt"
    notes.write_text("not weights at all\n")
    for wrong, said in ((notes, "not a weights file"), (tmp_path / "gone.pt", "no such weights file")):
        result = train("mafw", mafw, f"wrong-{said[:6]}", "--pretrained", str(wrong))
        out = " ".join(result.output.split())
        assert result.exit_code == 2 and f"{wrong}: {said}" in out, out
        assert "Traceback" not in out and "KeyError" not in out.split(said)[0], out
    result = train("mafw", mafw, "other", "--pretrained", str(best), "model.options={width: 8, lstm_hidden: 8}")
    assert result.exit_code == 2 and "shape mismatch" in result.output, result.output
