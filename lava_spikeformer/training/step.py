"""One optimizer step (forward, loss, backward, clip, update, schedule) in two versions.

``fast=True`` is what ``train`` runs: the running loss and accuracy stay on the device, so a step
never waits for the accelerator (``.item()`` is a host sync: the CPU cannot queue the next step's
kernels until the GPU has finished this one); the caller reads ``totals()`` once per log interval.
``configure_backends`` lets cuDNN benchmark its convolution algorithms once per shape (the input
size is fixed). ``fast=False`` is the plain loop this project started with (two ``.item()`` per
step): the reference the fast step is tested and benchmarked against; both compute the same numbers.

On CPU there is no device to wait for, so both run at the same speed there; the neuron is already
one autograd Function over T (``nn.neuron._FloatLIF``), whose T-step recurrence stays a loop.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

LossFn = Callable[[Tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor], torch.Tensor]


def configure_backends(device: torch.device) -> None:
    """Backend switches that only pay off for training at a fixed input size."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


class TrainStep:
    """``step(x, y)`` trains on one batch; ``totals()`` gives ``[loss_sum, correct, seen]`` so far.

    ``loss_fn(heads, labels, inputs)`` maps the model's heads (one, or two with a KD head) to the
    scalar loss; ``amp`` runs the forward under bfloat16 autocast.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Optional[torch.optim.lr_scheduler.LRScheduler] = None, *, loss_fn: LossFn,
                 amp: bool = False, clip_grad: float = 0.0, fast: bool = True):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.loss_fn, self.amp, self.clip_grad, self.fast = loss_fn, amp, clip_grad, fast
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.reset()

    def reset(self) -> None:
        device = self.params[0].device
        self.loss_sum = torch.zeros((), device=device) if self.fast else 0.0
        self.correct = torch.zeros((), dtype=torch.int64, device=device) if self.fast else 0
        self.seen = 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Train on ``(x, y)``; returns the first head's logits (detached)."""
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            output = self.model(x)
        heads = output if isinstance(output, tuple) else (output,)
        loss = self.loss_fn(heads, y, x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_grad)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        logits = heads[0].detach()
        hits = (logits.argmax(1) == y).sum()
        if self.fast:
            self.loss_sum += loss.detach() * len(y)
            self.correct += hits
        else:
            self.loss_sum += loss.item() * len(y)
            self.correct += hits.item()
        self.seen += len(y)
        return logits

    def totals(self) -> torch.Tensor:
        """``[loss_sum, correct, seen]`` as one float64 tensor on the device (one sync to read)."""
        device = self.params[0].device
        return torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device)
                            for v in (self.loss_sum, self.correct, self.seen)])
