"""Published weights by name (``pretrained="imagenet"`` / ``"clip"``) and the CLIP state-dict
layouts, without network: the libraries are replaced by fake modules that hand out state
dicts of our own (tiny) models, or made to fail at import."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from d2sp.models import (
    PretrainedDownloadError,
    PretrainedUnavailableError,
    create_model,
    load_pretrained,
)
from d2sp.models.clip_vit import ClipVisionTransformer
from d2sp.models.pretrained import frame_encoder_of
from d2sp.models.resnet import resnet18
from d2sp.models.vit import vit

K = 3
TINY_CLIP = {
    "img_size": 32,
    "patch_size": 8,
    "width": 32,
    "layers": 2,
    "heads": 4,
    "output_dim": 16,
}
TINY_CLIP_BACKBONE = {**TINY_CLIP, "temporal_heads": 2}
TINY_VIT = {"img_size": 32, "dim": 32, "depth": 2, "heads": 4}


def features(model: nn.Module, size: int = 32) -> torch.Tensor:
    """Per-frame features of the frame encoder on a fixed input: ``(3, F)``."""
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return frame_encoder_of(model).eval().forward_features(x)


def open_clip_names(layers: int) -> list[str]:
    """open_clip's ``model.visual`` parameter names, written out by hand."""
    names = ["conv1.weight", "class_embedding", "positional_embedding"]
    names += ["ln_pre.weight", "ln_pre.bias"]
    for i in range(layers):
        b = f"transformer.resblocks.{i}."
        names += [b + "ln_1.weight", b + "ln_1.bias"]
        names += [b + "attn.in_proj_weight", b + "attn.in_proj_bias"]
        names += [b + "attn.out_proj.weight", b + "attn.out_proj.bias"]
        names += [b + "ln_2.weight", b + "ln_2.bias"]
        names += [b + "mlp.c_fc.weight", b + "mlp.c_fc.bias"]
        names += [b + "mlp.c_proj.weight", b + "mlp.c_proj.bias"]
    return names + ["ln_post.weight", "ln_post.bias", "proj"]


# ---------------------------------------------------------------- CLIP layouts


def test_clip_encoder_has_open_clip_names_and_shapes():
    enc = ClipVisionTransformer(**TINY_CLIP)
    sd = enc.state_dict()
    assert sorted(sd) == sorted(open_clip_names(2))
    assert sd["conv1.weight"].shape == (32, 3, 8, 8)
    assert sd["class_embedding"].shape == (32,)
    assert sd["positional_embedding"].shape == (1 + 16, 32)
    assert sd["transformer.resblocks.1.attn.in_proj_weight"].shape == (96, 32)
    assert sd["transformer.resblocks.0.mlp.c_fc.weight"].shape == (128, 32)
    assert sd["proj"].shape == (32, 16)
    assert enc.num_features == 16


def test_clip_whole_model_state_dict_loads_visual_only():
    torch.manual_seed(1)
    src = ClipVisionTransformer(**TINY_CLIP)
    whole = {"visual." + k: v for k, v in src.state_dict().items()}
    # the text tower of a CLIP checkpoint, including names the visual tower also has
    whole["transformer.resblocks.0.attn.in_proj_weight"] = torch.randn(48, 16)
    whole["token_embedding.weight"] = torch.randn(10, 16)
    whole["logit_scale"] = torch.tensor(4.6)
    torch.manual_seed(2)
    model = create_model("clip_vit", num_classes=K, **TINY_CLIP_BACKBONE)
    assert load_pretrained(model, whole, strict=True) == ([], [])
    torch.testing.assert_close(features(model), features(src), rtol=0, atol=0)


def to_timm_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip visual names -> timm's CLIP ViT names (as timm's ``_convert_openai_clip``)."""
    swaps = [
        ("conv1", "patch_embed.proj"),
        ("positional_embedding", "pos_embed"),
        ("transformer.resblocks.", "blocks."),
        ("ln_pre", "norm_pre"),
        ("ln_post", "norm"),
        ("ln_", "norm"),
        ("in_proj_", "qkv."),
        ("out_proj", "proj"),
        ("mlp.c_fc", "mlp.fc1"),
        ("mlp.c_proj", "mlp.fc2"),
    ]
    out = {}
    for k, v in sd.items():
        for old, new in swaps:
            k = k.replace(old, new)
        if k == "proj":
            out["head.weight"], out["head.bias"] = v.t(), torch.zeros(v.shape[1])
        elif k == "class_embedding":
            out["cls_token"] = v[None, None]
        elif k == "pos_embed":
            out[k] = v[None]
        else:
            out[k] = v
    return out


def test_clip_timm_layout_is_converted():
    torch.manual_seed(1)
    src = ClipVisionTransformer(**TINY_CLIP)
    timm_sd = to_timm_layout(src.state_dict())
    assert "blocks.1.attn.qkv.weight" in timm_sd and "norm_pre.bias" in timm_sd
    torch.manual_seed(2)
    model = create_model("clip_vit", num_classes=K, **TINY_CLIP_BACKBONE)
    assert load_pretrained(model, timm_sd, strict=True) == ([], [])
    torch.testing.assert_close(features(model), features(src), rtol=0, atol=0)


def test_clip_position_table_resampled_on_load():
    torch.manual_seed(1)
    src = ClipVisionTransformer(**TINY_CLIP)  # 4x4 grid
    model = create_model("clip_vit", num_classes=K, **{**TINY_CLIP_BACKBONE, "img_size": 64})
    assert load_pretrained(model, src.state_dict(), strict=True) == ([], [])
    pos = model.backbone.encoder.positional_embedding
    assert pos.shape == (1 + 64, 32)  # 8x8 grid
    torch.testing.assert_close(pos[0], src.positional_embedding[0])
    assert not torch.allclose(pos[1:17], src.positional_embedding[1:])
    logits, w = model(torch.randn(2, 3, 3, 64, 64))
    assert logits.shape == (2, K) and w.shape == (2,)


def test_clip_vit_option_errors():
    with pytest.raises(
        ValueError, match=r"arch: expected one of ViT-B-16, ViT-L-14, got 'ViT-H-14'"
    ):
        create_model("clip_vit", num_classes=K, arch="ViT-H-14")
    with pytest.raises(ValueError, match="temporal: expected one of transformer, lstm, got 'gru'"):
        create_model("clip_vit", num_classes=K, **TINY_CLIP, temporal="gru")
    with pytest.raises(ValueError, match="temporal_heads: expected a divisor of output_dim=16"):
        create_model("clip_vit", num_classes=K, **TINY_CLIP, temporal_heads=3)
    with pytest.raises(ValueError, match="img_size: expected a multiple of patch_size=8, got 36"):
        create_model("clip_vit", num_classes=K, **{**TINY_CLIP, "img_size": 36})


# ---------------------------------------------------------------- missing or broken library


def test_missing_library_names_the_extra_and_backbone(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    with pytest.raises(PretrainedUnavailableError) as err:
        create_model("r18_lstm", num_classes=K, width=4, lstm_hidden=8, pretrained="imagenet")
    msg = str(err.value)
    assert msg.startswith("r18_lstm: ")
    assert "pip install 'd2sp[pretrained]'" in msg
    assert "torchvision" in msg and "is not installed" in msg
    assert isinstance(err.value, ImportError) and isinstance(err.value, RuntimeError)


@pytest.mark.parametrize(
    "name,options,kind,library",
    [
        ("vit_lstm", {**TINY_VIT, "lstm_hidden": 8}, "imagenet", "timm"),
        ("clip_vit", TINY_CLIP_BACKBONE, "clip", "open_clip"),
    ],
)
def test_missing_library_each_kind(monkeypatch, name, options, kind, library):
    monkeypatch.setitem(sys.modules, library, None)
    with pytest.raises(
        PretrainedUnavailableError, match=rf"^{name}: .*needs {library}.*d2sp\[pretrained\]"
    ):
        create_model(name, num_classes=K, pretrained=kind, **options)


def test_broken_library_reports_its_import_error(monkeypatch, tmp_path):
    pkg = tmp_path / "torchvision"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    with pytest.raises(PretrainedUnavailableError) as err:
        create_model("vgg13_lstm", num_classes=K, width=4, lstm_hidden=8, pretrained="imagenet")
    msg = str(err.value)
    assert msg.startswith("vgg13_lstm: ") and "fails to import" in msg
    assert "RuntimeError: operator torchvision::nms does not exist" in msg
    assert "pip install 'd2sp[pretrained]'" in msg


def test_wrong_kind_for_the_encoder():
    with pytest.raises(
        ValueError, match=r"^clip_vit: pretrained='imagenet'.*use pretrained='clip'"
    ):
        create_model("clip_vit", num_classes=K, pretrained="imagenet", **TINY_CLIP_BACKBONE)
    with pytest.raises(
        ValueError, match=r"^r18_lstm: pretrained='clip'.*use pretrained='imagenet'"
    ):
        create_model("r18_lstm", num_classes=K, pretrained="clip", width=4, lstm_hidden=8)
    enc = ClipVisionTransformer(**TINY_CLIP)  # hand-built: no arch, so no published weights
    with pytest.raises(ValueError, match=r"arch None"):
        load_pretrained(enc, "clip")


# ---------------------------------------------------------------- fake libraries


class Calls(list):
    """What a fake library was asked for."""


def fake_torchvision(build, calls: Calls) -> types.ModuleType:
    """``torchvision.models.<name>(weights=...)`` returning ``build(name)``."""
    mod = types.ModuleType("torchvision")
    models = types.SimpleNamespace()
    for name in ("resnet18", "resnet50", "vgg13", "vgg16"):

        def fn(*, weights=None, name=name):
            calls.append((name, weights))
            return build(name)

        setattr(models, name, fn)
    mod.models = models
    return mod


def tv_resnet(width: int):
    def build(name):
        torch.manual_seed(11)  # the "published" weights: the same every call
        return resnet18(width=width, num_classes=1000)

    return build


def test_imagenet_through_fake_torchvision(monkeypatch):
    calls = Calls()
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision(tv_resnet(4), calls))
    torch.manual_seed(0)
    model = create_model("r18_lstm", num_classes=K, width=4, lstm_hidden=8, pretrained="imagenet")
    # shape check on the meta device first, then the weights
    assert calls == [("resnet18", None), ("resnet18", "IMAGENET1K_V1")]
    torch.testing.assert_close(features(model), features(tv_resnet(4)("resnet18")), rtol=0, atol=0)


def test_imagenet_shape_check_before_download(monkeypatch):
    calls = Calls()
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision(tv_resnet(8), calls))
    with pytest.raises(
        ValueError,
        match=r"^r18_lstm: .*'conv1.weight': expected .*\(8, 3, 7, 7\), got \(4, 3, 7, 7\)",
    ):
        create_model("r18_lstm", num_classes=K, width=4, lstm_hidden=8, pretrained="imagenet")
    assert calls == [("resnet18", None)]  # nothing downloaded


def test_imagenet_partial_load_warns_for_former_dfer(monkeypatch):
    calls = Calls()
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision(tv_resnet(8), calls))
    with pytest.warns(UserWarning, match=r"missing .*spatial_"):
        model = create_model(
            "former_dfer", num_classes=K, width=8, img_size=32, heads=4, pretrained="imagenet"
        )
    enc = model.backbone.encoder
    torch.testing.assert_close(enc.conv1.weight, tv_resnet(8)("resnet18").conv1.weight)


def test_imagenet_through_fake_timm(monkeypatch):
    calls = Calls()

    def create(name, pretrained=False):
        calls.append((name, pretrained))
        torch.manual_seed(12)
        return vit("small", num_classes=1000, **TINY_VIT)

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create))
    model = create_model(
        "vit_lstm", num_classes=K, lstm_hidden=8, pretrained="imagenet", **TINY_VIT
    )
    assert calls == [("vit_small_patch16_224", False), ("vit_small_patch16_224", True)]
    torch.testing.assert_close(features(model), features(create("x")), rtol=0, atol=0)


class FakeCLIP(nn.Module):
    """What open_clip's ``create_model`` returns, as far as d2sp uses it: ``.visual``."""

    def __init__(self):
        super().__init__()
        self.visual = ClipVisionTransformer(**TINY_CLIP)
        self.logit_scale = nn.Parameter(torch.ones(()))


def test_clip_through_fake_open_clip(monkeypatch):
    calls = Calls()

    def create(name, pretrained=None, device="cpu", force_quick_gelu=False):
        calls.append((name, pretrained, str(device), force_quick_gelu))
        torch.manual_seed(13)
        return FakeCLIP()

    monkeypatch.setitem(sys.modules, "open_clip", types.SimpleNamespace(create_model=create))
    model = create_model("clip_vit", num_classes=K, pretrained="clip", **TINY_CLIP_BACKBONE)
    assert calls == [("ViT-B-16", None, "meta", True), ("ViT-B-16", "openai", "cpu", True)]
    torch.testing.assert_close(features(model), features(create("x").visual), rtol=0, atol=0)
    # ViT-L/14 asks for open_clip's ViT-L-14
    calls.clear()
    with pytest.raises(ValueError, match="expected the shape of the published model"):
        create_model(
            "clip_vit",
            num_classes=K,
            pretrained="clip",
            **{**TINY_CLIP_BACKBONE, "arch": "ViT-L/14", "patch_size": 4},
        )
    assert calls == [("ViT-L-14", None, "meta", True)]


def test_failed_download_is_a_clear_runtime_error(monkeypatch):
    def create(name, pretrained=False):
        if pretrained:
            raise OSError("Name or service not known")
        return vit("small", **TINY_VIT)

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create))
    with pytest.raises(PretrainedDownloadError) as err:
        create_model("vit_lstm", num_classes=K, lstm_hidden=8, pretrained="imagenet", **TINY_VIT)
    msg = str(err.value)
    assert msg.startswith("vit_lstm: imagenet weights (timm vit_small_patch16_224 (default))")
    assert "OSError: Name or service not known" in msg and "model.pretrained" in msg
    assert isinstance(err.value, RuntimeError)
