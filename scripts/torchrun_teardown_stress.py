"""Launch a tiny two-process DDP run under torchrun N times and count the runs that fail while
the ranks leave the gloo process group: the failure behind the once-flaky torchrun test.

    python scripts/torchrun_teardown_stress.py --runs 80 --load          # the code as it is
    python scripts/torchrun_teardown_stress.py --runs 40 --load --leave barrier

``--leave store`` is ``training.distributed.process_group`` unchanged (a barrier, then every rank
checks in at the rendezvous store before any destroys its group); ``--leave barrier`` replaces
that check-in by the plain barrier the code had before. The worker still holds its DDP wrapper
when it leaves the group, the harshest case: the process group outlives destroy_process_group
and is torn down at interpreter exit. A failing run is a rank killed by SIGABRT ("terminate
called without an active exception") as its peer closes. ``--load`` runs one busy loop at
nice 19 beside the runs, as the lead's training does on the 2-core machine. Each failing run's
stderr is kept in ``--logs``. Run from the repository root.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAILURE_SIGNS = ("closed by peer", "reset by peer", "terminate called", "Aborted")


def worker(leave: str) -> None:
    import torch
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    import training.distributed as dist_setup

    if leave == "barrier":
        dist_setup.finish_together = dist_setup.barrier  # the teardown before the store check-in
    torch.set_num_threads(1)
    with dist_setup.process_group("cpu") as ctx:
        model = DistributedDataParallel(nn.Linear(64, 64))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(10):
            loss = model(torch.randn(8, 64)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        dist_setup.all_reduce_mean(torch.tensor(1.0), ctx)
        dist_setup.barrier(ctx)  # the training loop's end-of-epoch barrier
        if ctx.is_main:
            time.sleep(random.uniform(0.0, 0.02))  # rank 0 still writes files after the loop


def launch(leave: str, runs: int, logs: Path) -> int:
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TEARDOWN_STRESS_LEAVE": leave,
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           __file__]  # fmt: skip
    failed = 0
    for run in range(1, runs + 1):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        signs = [line for line in done.stderr.splitlines() if any(s in line for s in FAILURE_SIGNS)]
        if done.returncode != 0 or signs:
            failed += 1
            log = logs / f"{leave}.{run}.err"
            log.write_text(done.stderr)
            first = signs[0] if signs else "(no known sign)"
            print(f"run {run}: exit {done.returncode}, {first.strip()} ({log})", flush=True)
    print(f"leave={leave}: {failed} of {runs} runs failed")
    return failed


def main() -> None:
    if "LOCAL_RANK" in os.environ:
        worker(os.environ["TEARDOWN_STRESS_LEAVE"])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--leave", choices=("store", "barrier"), default="store")
    parser.add_argument("--load", action="store_true", help="one busy loop at nice 19 beside")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/torchrun_teardown_stress"))
    args = parser.parse_args()
    burner = None
    if args.load:
        burner = subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while 1: pass"])
    try:
        failed = launch(args.leave, args.runs, args.logs)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
