"""Backbone registry, the six shipped backbones and pretrained loading (CPU, tiny sizes)."""

from __future__ import annotations

import pytest
import torch

from d2sp.models import DFERModel, create_backbone, create_model, list_backbones, load_pretrained
from d2sp.models.clip_vit import clip_vit
from d2sp.models.former_dfer import former_dfer
from d2sp.models.pretrained import frame_encoder_of
from d2sp.models.resnet import resnet18, resnet50
from d2sp.models.vgg import vgg13, vgg16
from d2sp.models.vit import vit
from d2sp.purify.losses import weighted_cross_entropy

K = 5

# Tiny options per backbone and the clip size they run on: (kwargs, H=W).
TINY: dict[str, tuple[dict, int]] = {
    "r18_lstm": ({"width": 4, "lstm_hidden": 16}, 32),
    "r50_lstm": ({"width": 4, "lstm_hidden": 16}, 32),
    "vgg13_lstm": ({"width": 4, "lstm_hidden": 16}, 32),
    "vgg16_lstm": ({"width": 4, "lstm_hidden": 16}, 32),
    "former_dfer": ({"width": 8, "img_size": 32, "heads": 4, "temporal_layers": 2}, 32),
    "vit_lstm": ({"img_size": 32, "dim": 32, "depth": 2, "heads": 4, "lstm_hidden": 16}, 32),
    "clip_vit": (
        {
            "img_size": 32,
            "patch_size": 8,
            "width": 32,
            "layers": 2,
            "heads": 4,
            "output_dim": 16,
            "temporal_heads": 2,
        },
        32,
    ),
}

# Other options of a backbone that change its structure, also run by the every-backbone tests.
VARIANTS: dict[str, list[dict]] = {"clip_vit": [{"temporal": "lstm", "lstm_hidden": 16}]}


def backbone_cases() -> list:
    """``(name, extra options)`` for every registered backbone and its VARIANTS."""
    out = []
    for name in list_backbones():
        out.append(pytest.param(name, {}, id=name))
        for extra in VARIANTS.get(name, []):
            out.append(pytest.param(name, extra, id=f"{name}-{'-'.join(map(str, extra.values()))}"))
    return out


# Parameter counts with the 1000-class ImageNet classifier (torchvision / timm references).
REFERENCE_PARAMS = {
    "resnet18": (lambda: resnet18(num_classes=1000), 11_689_512),
    "resnet50": (lambda: resnet50(num_classes=1000), 25_557_032),
    "vgg13": (lambda: vgg13(num_classes=1000), 133_047_848),
    "vgg16": (lambda: vgg16(num_classes=1000), 138_357_544),
    "vit_small_patch16_224": (lambda: vit("small", num_classes=1000), 22_050_664),
    "vit_base_patch16_224": (lambda: vit("base", num_classes=1000), 86_567_656),
    # open_clip's CLIP visual towers (``model.visual``)
    "clip_ViT-B-16": (lambda: clip_vit(arch="ViT-B-16").encoder, 86_192_640),
    "clip_ViT-L-14": (lambda: clip_vit(arch="ViT-L/14").encoder, 303_966_208),
}


def tiny(name: str) -> tuple[dict, int]:
    if name not in TINY:
        pytest.fail(f"backbone {name!r} has no tiny test configuration in TINY")
    kwargs, size = TINY[name]
    return dict(kwargs), size


def test_all_paper_backbones_registered():
    assert set(TINY) <= set(list_backbones())


@pytest.mark.parametrize("name,extra", backbone_cases())
def test_forward_backward(name, extra):
    torch.manual_seed(0)
    kwargs, size = tiny(name)
    model = create_model(name, num_classes=K, **kwargs, **extra)
    assert isinstance(model, DFERModel)
    clips = torch.randn(2, 4, 3, size, size)  # (B, T, C, H, W)
    labels = torch.tensor([0, 3])

    emb = model.forward_features(clips)
    assert emb.shape == (2, model.num_features)
    logits, weights = model(clips)
    assert logits.shape == (2, K)
    assert weights.shape == (2,)
    assert ((weights > 0) & (weights < 1)).all()
    loss = weighted_cross_entropy(logits, weights, labels)
    assert torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}: no gradient for {pname}"
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"


def test_no_weight_branch_is_plain_head():
    model = create_model("r18_lstm", num_classes=K, weight_branch=False, width=4, lstm_hidden=8)
    logits, weights = model(torch.randn(2, 3, 3, 32, 32))
    assert logits.shape == (2, K) and weights is None


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_reference_parameter_counts(name):
    build, expected = REFERENCE_PARAMS[name]
    with torch.device("meta"):
        enc = build()
    assert sum(p.numel() for p in enc.parameters()) == expected


def test_default_embedding_sizes():
    with torch.device("meta"):
        for name in list_backbones():
            assert create_backbone(name).num_features == 512, name
        assert create_backbone("vgg16_lstm", embed="fc7").encoder.num_features == 4096
        assert create_backbone("vit_lstm", size="base").encoder.num_features == 768
        assert create_backbone("r50_lstm").encoder.num_features == 2048
        assert create_backbone("clip_vit", arch="ViT-L-14").num_features == 768
        assert create_backbone("clip_vit", temporal="lstm", lstm_hidden=256).num_features == 256


def test_unknown_name_lists_known():
    with pytest.raises(ValueError) as err:
        create_model("resnet1000_gru", num_classes=K)
    for name in list_backbones():
        assert name in str(err.value)


def _frame_features(model, size):
    torch.manual_seed(123)
    x = torch.randn(3, 3, size, size)
    enc = frame_encoder_of(model).eval()
    with torch.no_grad():
        return enc.forward_features(x)


@pytest.mark.parametrize("name", list_backbones())
@pytest.mark.parametrize("in_memory", [False, True], ids=["file", "state_dict"])
def test_load_pretrained_round_trip(name, in_memory, tmp_path):
    kwargs, size = tiny(name)
    torch.manual_seed(1)
    src = create_model(name, num_classes=K, **kwargs)
    source = frame_encoder_of(src).state_dict()
    if not in_memory:
        path = tmp_path / "enc.pth"
        torch.save(source, path)
        source = path
    torch.manual_seed(2)
    dst = create_model(name, num_classes=K, **kwargs)
    assert not torch.equal(_frame_features(src, size), _frame_features(dst, size))
    missing, unexpected = load_pretrained(dst, source, strict=True)
    assert missing == [] and unexpected == []
    torch.testing.assert_close(
        _frame_features(dst, size), _frame_features(src, size), rtol=0, atol=0
    )


def test_load_pretrained_skips_classifier_and_module_prefix(tmp_path):
    torch.manual_seed(1)
    enc = resnet18(width=4, num_classes=1000)  # torchvision layout, with its fc
    sd = {"module." + k: v for k, v in enc.state_dict().items()}
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": sd, "epoch": 3}, path)
    model = create_model("r18_lstm", num_classes=K, width=4, lstm_hidden=8)
    missing, unexpected = load_pretrained(model, path, strict=True)
    assert missing == [] and unexpected == []
    assert not hasattr(model.backbone.encoder, "fc") or model.backbone.encoder.fc is None
    torch.testing.assert_close(
        _frame_features(model, 32),
        enc.eval().forward_features(
            torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(123))
        ),
    )

    # VGG: the full torchvision classifier is skipped when the encoder uses pooled features
    vgg = vgg13(width=4, num_classes=1000)
    torch.save({"model": vgg.state_dict()}, path)
    model = create_model("vgg13_lstm", num_classes=K, width=4, lstm_hidden=8)
    assert load_pretrained(model, path, strict=True) == ([], [])
    # ... and fc6/fc7 are loaded (classifier.6 skipped) for embed="fc7"
    model = create_model("vgg13_lstm", num_classes=K, width=4, lstm_hidden=8, embed="fc7")
    assert load_pretrained(model, path, strict=True) == ([], [])
    torch.testing.assert_close(
        model.backbone.encoder.classifier[3].weight, vgg.classifier[3].weight
    )


def test_create_model_pretrained_path(tmp_path):
    enc = resnet18(width=4)
    path = tmp_path / "r18.pth"
    torch.save(enc.state_dict(), path)
    model = create_model("r18_lstm", num_classes=K, pretrained=path, width=4, lstm_hidden=8)
    torch.testing.assert_close(model.backbone.encoder.conv1.weight, enc.conv1.weight)


def test_load_pretrained_partial_warns(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(resnet18(width=8).state_dict(), path)
    model = create_model("former_dfer", num_classes=K, width=8, img_size=32, heads=4)
    with pytest.warns(UserWarning, match="missing"):
        missing, unexpected = load_pretrained(model, path)
    assert unexpected == [] and missing and all(k.startswith("spatial_") for k in missing)
    with pytest.raises(ValueError, match="strict"):
        load_pretrained(model, path, strict=True)


def test_load_pretrained_mismatch_errors(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(vit("small", img_size=32, dim=32, depth=1, heads=4).state_dict(), path)
    model = create_model("r18_lstm", num_classes=K, width=4, lstm_hidden=8)
    with pytest.raises(ValueError, match="no parameter matched"):
        load_pretrained(model, path)
    torch.save(resnet18(width=8).state_dict(), path)
    with pytest.raises(ValueError, match=r"shape mismatch for 'conv1.weight'.*\(8, 3, 7, 7\)"):
        load_pretrained(model, path)


def test_vit_pos_embed_resampled_on_load_and_forward(tmp_path):
    torch.manual_seed(0)
    small = vit("small", img_size=32, dim=32, depth=1, heads=4)  # 2x2 grid
    path = tmp_path / "vit.pth"
    torch.save(small.state_dict(), path)
    model = create_model(
        "vit_lstm", num_classes=K, img_size=64, dim=32, depth=1, heads=4, lstm_hidden=8
    )  # 4x4 grid
    assert load_pretrained(model, path, strict=True) == ([], [])
    enc = model.backbone.encoder
    assert enc.pos_embed.shape == (1, 1 + 16, 32)
    torch.testing.assert_close(enc.pos_embed[:, 0], small.pos_embed[:, 0])
    # forward at a size other than img_size resamples the table on the fly
    for size in (48, 64):
        logits, w = model(torch.randn(2, 2, 3, size, size))
        assert logits.shape == (2, K) and w.shape == (2,)


@pytest.mark.parametrize("size", [64, 112])
def test_former_dfer_input_size(size):
    model = create_model("former_dfer", num_classes=K, width=8, heads=4, temporal_layers=1)
    assert model.backbone.encoder.grid_size == (7, 7)  # sized for 112² by default
    emb = model.forward_features(torch.randn(2, 3, 3, size, size))
    assert emb.shape == (2, 64)


def test_former_dfer_longer_clip_than_position_table():
    bb = former_dfer(width=8, img_size=32, heads=4, temporal_layers=1, num_frames=4)
    assert bb.forward_features(torch.randn(1, 6, 3, 32, 32)).shape == (1, 64)
    with pytest.raises(ValueError, match="divisible"):
        former_dfer(width=5, heads=8)


def test_input_size_not_hard_coded_cnn():
    model = create_model("r18_lstm", num_classes=K, width=4, lstm_hidden=8)
    for size in (32, 48, 112):
        assert model(torch.randn(1, 2, 3, size, size))[0].shape == (1, K)
