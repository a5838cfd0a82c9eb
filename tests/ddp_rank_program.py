"""The per-rank program ``test_distributed.py`` starts under torchrun (a script, not a test module)."""
import json
import sys
from pathlib import Path

import torch

from lava_spikeformer.data.folder import load_image_folders

MODEL = "meta_spikeformer_small32"


def _rank_program(root: str, out: str) -> None:
    """One rank: train 1 epoch, then resume to 2; record what this rank saved and its final parameters."""
    from lava_spikeformer.training import train as train_module
    from lava_spikeformer.training.distributed import session
    from lava_spikeformer.training.train import TrainConfig, train

    torch.set_num_threads(1)
    saved, steps = [], []
    real_save = train_module.save_checkpoint

    def recording_save(path, model, **extra):
        saved.append(Path(path).name)
        real_save(path, model, **extra)

    class RecordingStep(train_module.TrainStep):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            steps.append(self)

    train_module.save_checkpoint, train_module.TrainStep = recording_save, RecordingStep
    with session("cpu") as dist:
        train_set, val_set = load_image_folders(root, img_size=32, num_classes=10)
        common = dict(model=MODEL, out_dir=out, batch_size=4, optimizer="lamb", lr=1e-3, device="cpu")
        train(TrainConfig(epochs=1, **common), train_set, val_set, progress=False)
        saved_first = list(saved)
        train(TrainConfig(epochs=2, resume=True, **common), train_set, val_set, progress=False)
        params = torch.cat([p.detach().flatten() for p in steps[-1].params])
        torch.save(params, Path(out) / f"params_rank{dist.rank}.pt")
        report = {"rank": dist.rank, "world_size": dist.world_size, "saved_first": saved_first,
                  "saved_resume": saved[len(saved_first):], "samples_seen": [s.seen for s in steps]}
        (Path(out) / f"rank{dist.rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _rank_program(*sys.argv[1:3])
