"""Data-parallel training (torchrun, gloo, 2 processes) on an image folder tree, the folder data set
and the paper's recipe. torchrun starts ``ddp_rank_program.py`` beside this file on every rank."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lava_spikeformer import create_model
from lava_spikeformer.training.checkpoint import load_checkpoint, load_model, save_checkpoint
from lava_spikeformer.cli import _train_config, build_parser
from lava_spikeformer.data import DataError
from lava_spikeformer.data.folder import load_image_folder, load_image_folders
from lava_spikeformer.training.distributed import Distributed
from lava_spikeformer.training.recipe import build_optimizer, distillation_loss, load_teacher, paper_config

from .conftest import write_bomb_png, write_tree

MODEL = "meta_spikeformer_small32"


def test_two_process_ddp_trains_checkpoints_once_and_resumes(tmp_path):
    root = write_tree(tmp_path / "tree", {"train": 8, "val": 4})
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(Path(__file__).with_name("ddp_rank_program.py")), str(root), str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    # 16 images, 8 per rank, batch 4: every rank trains on its own 8 images per epoch (2 steps)
    assert [r["samples_seen"] for r in reports] == [[8, 8], [8, 8]]
    assert reports[0]["saved_first"].count("checkpoint.pt") == 1
    assert reports[0]["saved_resume"].count("checkpoint.pt") == 1
    assert reports[1]["saved_first"] == reports[1]["saved_resume"] == []
    assert sorted(p.name for p in out.glob("*.pt") if not p.name.startswith("params")) in (
        ["best.pt", "checkpoint.pt"], ["checkpoint.pt"])
    payload = load_checkpoint(out / "checkpoint.pt")
    assert payload["epoch"] == 2
    assert payload["optimizer"]["param_groups"][0]["step"] == 4, "LAMB steps: 2 epochs x 2 steps on each rank"
    assert payload["scheduler"]["last_epoch"] == 4
    with open(out / "metrics.csv") as f:
        assert [line.split(",")[0] for line in f.read().splitlines()[1:]] == ["1", "2"]
    rank0, rank1 = (torch.load(out / f"params_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(rank0, rank1), "DDP keeps the replicas identical"
    model, _ = load_model(out / "checkpoint.pt")
    assert torch.equal(torch.cat([p.detach().flatten() for p in model.parameters()]), rank0)


def test_shard_pads_so_every_rank_runs_the_same_steps():
    order = torch.tensor([4, 0, 3, 1, 2])
    shards = [Distributed(rank=r, world_size=2).shard(order).tolist() for r in (0, 1)]
    assert shards == [[4, 3, 2], [0, 1, 4]]
    assert torch.equal(Distributed().shard(order), order)


def test_folder_set_transforms(tmp_path):
    root = write_tree(tmp_path / "tree", {"train": 3, "val": 2}, size=40)
    train_set, val_set = load_image_folders(root, img_size=32, num_classes=10)
    assert (len(train_set), len(val_set), train_set.classes) == (6, 4, ("cat", "dog"))
    assert train_set.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert val_set.batch(slice(0, 3)).shape == (3, 3, 32, 32)
    augmented = [train_set.batch(torch.arange(4), torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(augmented[0], augmented[1]) and not torch.equal(augmented[0], augmented[2])
    assert val_set.subset(2).labels.tolist() == [0, 1], "subset spreads over the classes"


def test_folder_errors_name_the_folder_or_file(tmp_path):
    root = write_tree(tmp_path / "tree", {"train": 2})
    with pytest.raises(DataError, match=r"tree/val not found: expected ROOT/train/<class>/<image>"):
        load_image_folders(root, img_size=32, num_classes=10)
    (root / "val").mkdir()
    with pytest.raises(DataError, match=r"tree/val: Couldn't find any class folder"):
        load_image_folder(root, "val", img_size=32)
    write_tree(root, {"val": 1})
    for split in ("train", "val"):
        (root / split / "bird").mkdir()
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / split / "bird" / "0.png")
    with pytest.raises(DataError, match=r"3 classes but the model has 2 outputs"):
        load_image_folders(root, img_size=32, num_classes=2)
    (root / "val" / "bird" / "0.png").unlink()
    (root / "val" / "bird").rmdir()
    with pytest.raises(DataError, match=r"same class folders; in only one of them: \['bird'\]"):
        load_image_folders(root, img_size=32, num_classes=10)
    (root / "train" / "cat" / "broken.png").write_bytes(b"not a png")
    broken = load_image_folder(root, "train", img_size=32)
    with pytest.raises(DataError, match=r"cat/broken.png: cannot read image"):
        broken.batch(slice(0, len(broken)))
    (root / "train" / "cat" / "broken.png").unlink()
    write_bomb_png(root / "train" / "cat" / "bomb.png")         # PIL's DecompressionBombError, no OSError
    bomb = load_image_folder(root, "train", img_size=32)
    with pytest.raises(DataError, match=r"cat/bomb.png: cannot read image \(Image size \(900000000 pixels\)"):
        bomb.batch(slice(0, len(bomb)))


def test_paper_recipe_and_cli_overrides():
    t1 = paper_config("t1", model="meta_spikeformer_c32", world_size=8)
    assert (t1.batch_size, t1.epochs, t1.warmup_epochs, t1.timesteps) == (196, 200, 10, 1)
    assert t1.lr == pytest.approx(6e-4 * 1568 / 256)
    assert (t1.optimizer, t1.weight_decay, t1.label_smoothing, t1.min_lr, t1.clip_grad) == ("lamb", 0.05, 0.1, 1e-6, 0.0)
    with pytest.raises(ValueError, match="'t4' finetunes a T=1 model: give finetune_from"):
        paper_config("t4", model="meta_spikeformer_c32")
    t4 = paper_config("t4", model="meta_spikeformer_c32", batch_size=32, finetune_from="t1.pt")
    assert (t4.timesteps, t4.epochs, t4.warmup_epochs, t4.lr) == (4, 20, 2, pytest.approx(2e-5 * 32 / 256))
    args = build_parser().parse_args(["train", "--recipe", "t1", "--model", "meta_spikeformer_c32",
                                      "--batch-size", "32", "--epochs", "3"])
    cfg = _train_config(args, world_size=2)
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer, cfg.warmup_epochs) == (3, 32, "lamb", 10)
    assert cfg.lr == pytest.approx(6e-4 * 64 / 256)


def test_lamb_groups_follow_the_reference():
    from timm.optim import Lamb
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = build_optimizer(model, "lamb", lr=1e-3, weight_decay=0.05)
    assert isinstance(optimizer, Lamb) and optimizer.defaults["trust_clip"]
    decay = {g["weight_decay"]: sum(p.numel() for p in g["params"]) for g in optimizer.param_groups}
    assert decay == {0.0: 3 + 3 + 3, 0.05: 12}, "no decay on biases and BatchNorm"
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer(model, "sgd", lr=1e-3, weight_decay=0.0)


def test_distillation_loss_is_deit_hard_distillation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    logits_kd = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 2.0]])
    teacher = torch.tensor([[0.1, 0.9, 0.0], [0.0, 0.2, 3.0]])         # argmax: 1, 2
    labels = torch.tensor([0, 1])
    loss = distillation_loss((logits, logits_kd), labels, teacher, alpha=0.5, label_smoothing=0.1)
    log_p, log_q = F.log_softmax(logits, 1), F.log_softmax(logits_kd, 1)
    smooth = (0.9 * -log_p[[0, 1], [0, 1]] + 0.1 * -log_p.mean(1)).mean()
    hard = -(log_q[0, 1] + log_q[1, 2]) / 2
    assert loss.item() == pytest.approx(0.5 * smooth.item() + 0.5 * hard.item(), rel=1e-6)
    with pytest.raises(ValueError, match="needs a model with a KD head"):
        distillation_loss((logits,), labels, teacher, alpha=0.5, label_smoothing=0.1)


def test_teacher_from_timm_or_checkpoint(tmp_path):
    teacher = load_teacher("timm:resnet10t", num_classes=10, device=torch.device("cpu"))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert teacher(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="timm has no model 'no_such_net'"):
        load_teacher("timm:no_such_net", num_classes=10, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="weights file .*missing.safetensors does not exist"):
        load_teacher(f"timm:resnet10t:{tmp_path}/missing.safetensors", num_classes=10, device=torch.device("cpu"))


def test_training_with_a_teacher_trains_the_kd_head(tmp_path):
    from lava_spikeformer.training.train import TrainConfig, train
    train_set, val_set = load_image_folders(write_tree(tmp_path / "tree", {"train": 4, "val": 1}), img_size=32,
                                            num_classes=10)
    torch.manual_seed(0)                                  # train() seeds 0 before building the model
    student = create_model(MODEL, kd_head=True)
    before = student.head_kd.fc.weight.detach().clone()
    save_checkpoint(tmp_path / "teacher.pt", create_model(MODEL))
    train(TrainConfig(model=MODEL, out_dir=str(tmp_path / "run"), epochs=1, batch_size=8,
                      teacher=str(tmp_path / "teacher.pt")), train_set, val_set, progress=False)
    model, _ = load_model(tmp_path / "run" / "checkpoint.pt")
    assert model.cfg.kd_head
    assert not torch.equal(model.head_kd.fc.weight, before), "the KD head learned from the teacher"

