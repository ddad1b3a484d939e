"""On a CUDA machine only (skipped elsewhere): a training step of every backbone, as the
trainer takes it (``purifier.batch_loss``, backward, the optimiser's step,
``purifier.after_step``), never synchronises the host with the GPU, in every registered
purification mode (``d2sp.list_modes()``: the default mode, the paper's, the baselines and
the peer modes, whose second network is trained in the same step). The step checked is one
of the first epoch, with a fresh purifier (a mode's later phases, e.g. DivideMix's division
of a batch, may need the host)."""

import pytest
import torch

from d2sp import list_modes
from d2sp.models import create_model, list_backbones
from d2sp.purify import create_purifier

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("mode", list_modes())
@pytest.mark.parametrize("name", list_backbones())
def test_a_training_step_has_no_host_sync(name, mode):
    from tests.test_models import tiny

    kwargs, size = tiny(name)
    device = torch.device("cuda")
    n = 256
    labels = torch.randint(0, 7, (n,))
    purifier = create_purifier(mode, labels, num_classes=7, device=device)
    model = create_model(name, num_classes=7, weight_branch=purifier.weight_branch, **kwargs).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    peer = {}
    if purifier.trains_peer:  # built as the trainer builds it: the model's architecture
        peer["peer"] = create_model(name, num_classes=7, weight_branch=purifier.weight_branch,
                                    **kwargs).to(device)  # fmt: skip
    purifier.bind(model, optimizer=opt, **peer)
    clips = torch.randn(8, 4, 3, size, size, device=device)  # (B, T, C, H, W)
    idx = torch.arange(8, device=device)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = purifier.batch_loss(model, clips, idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        purifier.after_step()

    step()  # first call: lazy initialisation may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()

