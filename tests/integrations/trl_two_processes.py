"""Run by test_trl.py under `torch.distributed.run --nproc_per_node 2`: DVAOGRPOTrainer on two
CPU processes (gloo), with each prompt's 4 generations split 2 + 2 across the processes.

Every process checks that it trained on its own slice of the engine's advantages of the
gathered rewards, rows [rank n, (rank + 1) n) as TRL slices its own; rank 0 checks the metrics.
Exits non-zero (an AssertionError) on any mismatch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integrations import test_trl as t  # noqa: E402


def main(out: Path) -> None:
    args = t.config(out, per_device_train_batch_size=2, max_steps=3)
    trainer = t.run(out, args=args)
    rank, processes = trainer.accelerator.process_index, trainer.accelerator.num_processes
    assert processes == 2
    n, total = 2, 4  # per process, gathered: one prompt's 4 generations per step
    assert [r.shape for r in trainer.generated] == [(total, 3)] * 3
    got, rows = t.consumed(trainer)
    mine = torch.cat([torch.arange(n) + g * total + rank * n for g in range(3)])
    assert torch.equal(rows, mine), (rank, rows)
    assert torch.equal(got, t.expected(trainer, "dvao", 0, 0.0)[rows]), rank
    if rank == 0:
        t.check_metrics(trainer, ddof=0)
    print(f"rank {rank}: ok", flush=True)
    torch.distributed.destroy_process_group()  # else the launcher waits out a timeout


if __name__ == "__main__":
    main(Path(sys.argv[1]))
