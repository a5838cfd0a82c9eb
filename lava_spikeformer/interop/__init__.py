"""Other formats in and out: reference (BICLab) checkpoints, lava-dl netx's plain schema."""
