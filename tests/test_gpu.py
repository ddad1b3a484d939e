"""On a CUDA machine only (skipped elsewhere): one training step of every backbone through the
purifier's calls never synchronises the host with the GPU, in the paper mode and in the
package's default mode (whatever its name: ``PurifyConfig().mode``)."""

import pytest
import torch

from d2sp.config import PurifyConfig
from d2sp.models import create_model, list_backbones
from d2sp.purify import create_purifier

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("mode", sorted({"paper", PurifyConfig().mode}))
@pytest.mark.parametrize("name", list_backbones())
def test_a_training_step_has_no_host_sync(name, mode):
    from tests.test_models import tiny

    kwargs, size = tiny(name)
    device = torch.device("cuda")
    model = create_model(name, num_classes=7, **kwargs).to(device)
    n = 256
    labels = torch.randint(0, 7, (n,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    purifier = create_purifier(mode, labels, num_classes=7, model=model, optimizer=opt, device=device)
    clips = torch.randn(8, 4, 3, size, size, device=device)  # (B, T, C, H, W)
    idx = torch.arange(8, device=device)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):  # the purifier runs the model
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
