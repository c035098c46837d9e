"""The entry point of every process `accelerate launch` starts for a stage (harness.training.distributed).

It reads the pickled StageJob, trains the process's share of the stage and, in process 0, writes it.
It sits apart from distributed.py, which train.py imports, so that the two never import each other.
"""

from __future__ import annotations

import pickle
import sys

from harness.core import progress
from harness.training import distributed
from harness.training.train import fit_and_save


def main(job_path: str) -> None:
    """Trains the job's stage in this launched process; process 0 writes it."""
    distributed.die_with_parent()
    distributed.mark_launched()
    import torch

    with open(job_path, "rb") as handle:
        launch = pickle.load(handle)
    torch.set_num_threads(launch["threads"])
    progress.use(progress.launched_reporter())
    fit_and_save(launch["job"])
    # Machines other than the first go on to the next stage only once process 0 has written this one.
    distributed.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
