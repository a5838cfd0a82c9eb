"""The fast training step computes what the plain one does; worker processes build the same batches."""
import copy

import pytest
import torch
import torch.nn.functional as F

from lava_spikeformer import create_model
from lava_spikeformer.data.folder import load_image_folder
from lava_spikeformer.data.loader import epoch_batches
from lava_spikeformer.training.recipe import build_optimizer
from lava_spikeformer.training.step import TrainStep

from .conftest import write_tree


def _loss(heads, y, x):
    return sum(F.cross_entropy(h.float(), y, label_smoothing=0.1) for h in heads) / len(heads)


@pytest.mark.parametrize("timesteps, amp", [(1, False), (2, True)])
def test_fast_step_matches_plain_step(timesteps, amp):
    torch.manual_seed(0)
    plain_model = create_model("meta_spikeformer_small28", timesteps=timesteps)
    fast_model = copy.deepcopy(plain_model)
    steps = {}
    for name, model in (("plain", plain_model), ("fast", fast_model)):
        optimizer = build_optimizer(model, "adamw", lr=2e-3, weight_decay=0.05)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (step + 1) / 4)
        steps[name] = TrainStep(model, optimizer, scheduler, loss_fn=_loss, amp=amp, clip_grad=1.0,
                                fast=name == "fast")
    generator = torch.Generator().manual_seed(1)
    for _ in range(2):
        x = torch.randn(8, 1, 28, 28, generator=generator)
        y = torch.randint(10, (8,), generator=generator)
        plain_logits, fast_logits = steps["plain"](x, y), steps["fast"](x, y)
        assert torch.equal(plain_logits, fast_logits)
        for (name, p), q in zip(plain_model.named_parameters(), fast_model.parameters()):
            assert torch.equal(p.grad, q.grad), f"gradient of {name}"
            assert torch.equal(p, q), f"updated {name}"
    assert isinstance(steps["plain"].loss_sum, float) and isinstance(steps["fast"].loss_sum, torch.Tensor)
    plain_totals, fast_totals = steps["plain"].totals(), steps["fast"].totals()
    assert fast_totals[2].item() == 16
    torch.testing.assert_close(fast_totals, plain_totals, rtol=1e-6, atol=0)   # float32 vs Python float sums


def test_worker_batches_equal_in_process_batches(tmp_path):
    root = write_tree(tmp_path, {"train": 6})
    data = load_image_folder(root, "train", img_size=32)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    runs = {}
    for workers in (0, 2):
        generator = torch.Generator().manual_seed(7)
        runs[workers] = list(epoch_batches(data, order, 5, generator, workers=workers))
        assert torch.equal(generator.get_state(), _state_after_seeds(7, batches=3)), "one seed per batch"
    assert [x.shape[0] for x, _ in runs[0]] == [5, 5, 2]
    assert torch.cat([y for _, y in runs[0]]).tolist() == data.labels[order].tolist()
    for (x_in, y_in), (x_workers, y_workers) in zip(runs[0], runs[2]):
        assert torch.equal(x_in, x_workers) and torch.equal(y_in, y_workers)
    assert not torch.equal(runs[0][0][0], data.batch(order[:5])), "training batches are augmented"


def _state_after_seeds(seed, batches):
    generator = torch.Generator().manual_seed(seed)
    torch.randint(2 ** 62, (batches, 1), generator=generator)
    return generator.get_state()
