"""The progress state is gathered across processes: two real torch.distributed (gloo) ranks
each see half of a group, and both end with the state of the whole group."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch.multiprocessing as mp

COMPLETIONS = {
    0: ["<think><area>[]</area><text>x</text></think><answer>(A)</answer>"] * 2,  # right, right
    1: ["<think><area>[]</area><text>x</text></think><answer>(B)</answer>"] * 2,  # wrong, wrong
}


def _rank(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from sifmodel.rewards import SIFRewards

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        rewards = SIFRewards()
        columns = {"answer": ["(A)"] * 2, "question": ["q"] * 2, "sample_id": ["shared"] * 2}
        scores = rewards.accuracy(COMPLETIONS[rank], **columns)
        Path(out, f"{rank}.json").write_text(json.dumps({"scores": scores, "state": rewards.progress.values}))
    finally:
        dist.destroy_process_group()


def test_progress_state_is_the_same_on_every_rank(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]
    assert results[0]["scores"] == [1.0, 1.0] and results[1]["scores"] == [0.0, 0.0]
    # The group mean over both ranks (1, 1, 0, 0), not each rank's own half.
    assert results[0]["state"] == results[1]["state"] == {"shared": 0.5}
