"""torchrun for this project: the same flags, one-line failures, and stops that schedulers can ask for.

    python launch.py --standalone --nproc_per_node 4 train.py --experiment_dir exp --batch_size 64 ...
    srun python launch.py --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint $HEAD:29500 \\
        train.py ...                          # one launcher per node (scripts/slurm_train.sbatch)

It runs torchrun's own launcher in this process and changes only how the job ends:
- a failed process's one-line error is the last line printed (`error: rank 0: ...`),
  not torchrun's ChildFailedError report; exit status 2 for such an error;
- SIGUSR1 (what SLURM's `--signal=USR1@120` sends) is handled like SIGTERM on every torch
  version: passed to the training processes, which stop at the same step, save a
  checkpoint and exit; the launcher then exits with 128 + the signal's number (138 for
  SIGUSR1, 143 for SIGTERM), which the SLURM script reads to requeue the job.
"""
from __future__ import annotations

import sys

from utils.launcher import launch

if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
