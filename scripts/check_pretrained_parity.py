#!/usr/bin/env python
"""Check that torchvision / timm / open_clip state dicts load into d2sp's frame encoders
and give the same per-frame features.

Needs torchvision, timm and open_clip (no download: models are built with random weights,
and their norm statistics and affine parameters are randomised so that loading them
matters). For each architecture: save the reference state dict, load it with strict key
matching into our encoder (classifier skipped), and compare per-frame features on the same
random input in fp32, eval mode (TF32 off). A second table checks every entry of
``d2sp.models.pretrained_sources.SOURCES`` (what ``pretrained="imagenet"`` / ``"clip"``
fetch) against the installed library: the model name exists and its parameter shapes
(built on the meta device, no download) fit our default-size encoder. Prints Markdown;
exits 1 on any failure, 2 if none of the libraries is importable.

    python scripts/check_pretrained_parity.py [--device cuda] [--batch 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path

import torch
from torch import nn

SRC = Path(__file__).resolve().parents[1] / "src"


def _import_models():
    """Import ``d2sp.models`` from ``src/`` without running ``d2sp/__init__`` (no data deps)."""
    if "d2sp" not in sys.modules:
        pkg = types.ModuleType("d2sp")
        pkg.__path__ = [str(SRC / "d2sp")]
        sys.modules["d2sp"] = pkg
    import d2sp.models as models

    return models


TOL = 1e-4  # max abs diff, relative to max(1, max |reference feature|)


def randomise_norm_stats(model: nn.Module, seed: int) -> None:
    """Random BN running stats and affine parameters (fresh models have trivial ones)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.LayerNorm):
                if m.weight is not None:
                    m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(1 + 0.2 * torch.rand(m.running_var.shape, generator=g))


def plain(build):
    """Reference maker: ``build()`` with randomised norm statistics; saves its own state."""

    def make(seed):
        m = build()
        randomise_norm_stats(m, seed)
        return m, m.state_dict()

    return make


def cases():
    """``(name, make_reference, reference_features, build_ours, input_size)`` tuples.

    ``make_reference(seed) -> (reference model, state dict to save)``.
    """
    return torchvision_cases() + timm_cases() + timm_clip_cases() + open_clip_cases()


def torchvision_cases():
    from d2sp.models.resnet import resnet18, resnet50
    from d2sp.models.vgg import vgg13, vgg16

    out = []
    try:
        import torchvision.models as tvm

        def resnet_feats(m, x):  # pooled features: the model without its fc
            m.fc = nn.Identity()
            return m(x)

        def vgg_gap(m, x):  # global average pool of the conv features
            return m.features(x).mean(dim=(2, 3))

        def vgg_fc7(m, x):  # torchvision's path up to fc7 (classifier without its last layer)
            m.classifier[6] = nn.Identity()
            return m(x)

        out += [
            ("resnet18", plain(tvm.resnet18), resnet_feats, resnet18, 112),
            ("resnet50", plain(tvm.resnet50), resnet_feats, resnet50, 112),
            ("vgg13 (gap)", plain(tvm.vgg13), vgg_gap, vgg13, 112),
            ("vgg16 (gap)", plain(tvm.vgg16), vgg_gap, vgg16, 112),
            ("vgg16 (fc7)", plain(tvm.vgg16), vgg_fc7, lambda: vgg16(embed="fc7"), 112),
        ]
    except Exception as exc:  # torchvision missing or broken
        print(f"torchvision unavailable ({exc!r}): ResNet/VGG checks skipped")
    return out


def timm_cases():
    from d2sp.models.vit import vit

    out = []
    try:
        import timm

        def timm_feats(m, x):  # pre-logits: final-norm class token
            return m.forward_head(m.forward_features(x), pre_logits=True)

        for size in ("small", "base"):
            tname = f"vit_{size}_patch16_224"
            out.append(
                (
                    tname,
                    plain(lambda tname=tname: timm.create_model(tname, pretrained=False)),
                    timm_feats,
                    lambda size=size: vit(size),
                    224,
                )
            )

        def timm_small_112(seed):  # timm's own pos_embed resampling of a 224² checkpoint
            from timm.models.vision_transformer import checkpoint_filter_fn

            src = timm.create_model("vit_small_patch16_224", pretrained=False)
            randomise_norm_stats(src, seed)
            m = timm.create_model("vit_small_patch16_224", pretrained=False, img_size=112)
            m.load_state_dict(checkpoint_filter_fn(src.state_dict(), m))
            return m, src.state_dict()

        out.append(
            (
                "vit_small 224² file -> 112²",
                timm_small_112,
                timm_feats,
                lambda: vit("small", img_size=112),
                112,
            )
        )

    except Exception as exc:
        print(f"timm unavailable ({exc!r}): ViT checks skipped")
    return out


def timm_clip_cases():
    from d2sp.models.clip_vit import ClipVisionTransformer

    out = []
    try:
        import timm

        def timm_clip(img_size):  # timm's CLIP layout (names converted on load)
            def make(seed):
                src = timm.create_model(
                    "vit_base_patch16_clip_quickgelu_224", pretrained=False, num_classes=512
                )
                randomise_norm_stats(src, seed)
                with torch.no_grad():
                    src.head.bias.zero_()  # as in the converted OpenAI checkpoint
                if img_size == 224:
                    return src, src.state_dict()
                m = timm.create_model(
                    "vit_base_patch16_clip_quickgelu_224",
                    pretrained=False,
                    num_classes=512,
                    img_size=img_size,
                )
                m.load_state_dict(checkpoint_filter_fn(src.state_dict(), m))
                return m, src.state_dict()

            return make

        from timm.models.vision_transformer import checkpoint_filter_fn

        for img_size, label in ((224, ""), (112, " 224² file -> 112²")):
            out.append(
                (
                    f"timm vit_base_patch16_clip_quickgelu_224{label}",
                    timm_clip(img_size),
                    lambda m, x: m(x),  # head = CLIP's projection
                    lambda img_size=img_size: ClipVisionTransformer(img_size=img_size),
                    img_size,
                )
            )
    except Exception as exc:
        print(f"timm unavailable ({exc!r}): CLIP (timm layout) checks skipped")
    return out


def open_clip_cases():
    from d2sp.models.clip_vit import ClipVisionTransformer

    out = []
    try:
        import open_clip

        def make(seed):  # the whole CLIP model: its visual.* keys load, the text tower is dropped
            m = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True)
            randomise_norm_stats(m, seed)
            return m, m.state_dict()

        out.append(
            (
                "open_clip ViT-B-16 (whole CLIP state dict)",
                make,
                lambda m, x: m.encode_image(x),
                lambda: ClipVisionTransformer(),
                224,
            )
        )
    except Exception as exc:
        print(f"open_clip unavailable ({exc!r}): CLIP checks skipped")
    return out


def default_encoder(kind: str, arch: str) -> nn.Module:
    """Our encoder at its default size for an entry of ``SOURCES``, on the meta device."""
    from d2sp.models import create_backbone

    name = {
        "resnet18": ("r18_lstm", {}),
        "resnet50": ("r50_lstm", {}),
        "vgg13": ("vgg13_lstm", {}),
        "vgg16": ("vgg16_lstm", {}),
        "vit_small_patch16_224": ("vit_lstm", {"size": "small"}),
        "vit_base_patch16_224": ("vit_lstm", {"size": "base"}),
        "ViT-B-16": ("clip_vit", {"arch": "ViT-B-16"}),
        "ViT-L-14": ("clip_vit", {"arch": "ViT-L-14"}),
    }[arch]
    with torch.device("meta"):
        return create_backbone(name[0], **name[1]).encoder


def check_sources() -> tuple[list[tuple[str, ...]], int]:
    """Every ``SOURCES`` entry: the library knows the model and its shapes fit ours."""
    from d2sp.models import pretrained_sources as ps

    rows, failed = [], 0
    for kind, table in ps.SOURCES.items():
        for arch, src in table.items():
            status, note = "ok", ""
            try:
                enc = default_encoder(kind, arch)
                if ps.source_for(enc, kind) != src:
                    raise AssertionError(f"source_for gives {ps.source_for(enc, kind)}")
                lib = ps.import_library(src.library, f"{kind} {arch}")
                ref = ps.reference_state_dict(lib, src)
                ps.check_shapes(enc, ref, f"{kind} {arch}")
                keys = len(ref)
            except Exception as exc:
                status, note, keys = "FAIL", f"{type(exc).__name__}: {exc}", "-"
            failed += status != "ok"
            rows.append((kind, arch, src.describe(), str(keys), status, note))
    return rows, failed


def report_sources() -> int:
    """Print the :func:`check_sources` table; return the number of failures."""
    rows, failed = check_sources()
    print("\nPublished-weights sources (`pretrained=imagenet|clip`), meta device, no download:\n")
    print("| kind | arch | library call | reference tensors | shapes fit |")
    print("|---|---|---|---|---|")
    for kind, arch, call, keys, st, _note in rows:
        print(f"| {kind} | {arch} | {call} | {keys} | {st} |")
    for _kind, arch, *_, note in rows:
        if note:
            print(f"{arch}: {note}")
    print(f"\n{len(rows) - failed}/{len(rows)} sources fit")
    return failed


def library_versions() -> str:
    out = [f"torch {torch.__version__}"]
    for name in ("torchvision", "timm", "open_clip"):
        try:
            out.append(f"{name} {__import__(name).__version__}")
        except Exception:
            out.append(f"{name} unavailable")
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args(argv)
    models = _import_models()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    dev = torch.device(args.device)

    todo = cases()
    if not todo:
        print("nothing to check: none of torchvision, timm, open_clip is importable")
        return 2
    rows, failed = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, make_ref, ref_feats, build_ours, size) in enumerate(todo):
            status, note, ref, ours = "ok", "", None, None
            n_keys = n_miss = n_unexp = "-"
            diff = scale = float("nan")
            try:
                torch.manual_seed(i)
                ref, state = make_ref(100 + i)
                path = Path(tmp) / f"{i}.pth"
                torch.save(state, path)
                ours = build_ours()
                missing, unexpected = models.load_pretrained(ours, path, strict=True)
                n_keys, n_miss, n_unexp = len(ours.state_dict()), len(missing), len(unexpected)
                ref, ours = ref.to(dev).eval(), ours.to(dev).eval()
                x = torch.randn(
                    args.batch, 3, size, size, generator=torch.Generator().manual_seed(7)
                ).to(dev)
                with torch.no_grad():
                    a = ref_feats(ref, x).float()
                    b = ours.forward_features(x).float()
                if a.shape != b.shape:
                    raise AssertionError(
                        f"feature shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
                    )
                diff = (a - b).abs().max().item()
                scale = a.abs().max().item()
                if not diff <= TOL * max(1.0, scale):
                    status = "FAIL"
                    note = f"max abs diff {diff:.3g} > {TOL:g}·max(1, {scale:.3g})"
            except Exception as exc:
                status, note = "FAIL", f"{type(exc).__name__}: {exc}"
            failed += status != "ok"
            rows.append((name, f"{size}²", n_keys, n_miss, n_unexp, diff, scale, status, note))
            del ref, ours
            if dev.type == "cuda":
                torch.cuda.empty_cache()

    print(f"\n{library_versions()}; device {dev}, fp32, TF32 off, batch {args.batch}\n")
    print(
        "| model | input | encoder keys | missing | unexpected | max abs diff | max abs ref "
        "| status |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, size, k, m, u, d, s, st, _note in rows:
        print(f"| {name} | {size} | {k} | {m} | {u} | {d:.3g} | {s:.3g} | {st} |")
    for name, *_, note in rows:
        if note:
            print(f"{name}: {note}")
    print(f"\n{len(rows) - failed}/{len(rows)} passed")
    src_failed = report_sources()
    return 1 if failed or src_failed else 0


if __name__ == "__main__":
    sys.exit(main())
