"""Training (torch + lava-dl slayer): the run config, the loop and its fast step, the paper's recipe,
distributed data parallel, checkpoints. Depends on ``nn`` and ``data``; nothing below depends on it."""
