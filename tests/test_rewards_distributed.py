"""Rewards on several processes: two real torch.distributed (gloo) ranks, each seeing half of a
group. The progress state, the statistics and a judge failure under ``raise`` are the same on
every rank afterwards."""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta
from pathlib import Path

import torch.multiprocessing as mp

RIGHT = "<think><area>[]</area><text>x</text></think><answer>(A)</answer>"
WRONG = "<think><area>[]</area><text>x</text></think><answer>(B)</answer>"
FREE_FORM = "<think><area>[]</area><text>x</text></think><answer>a red mug</answer>"
NO_ANSWER = "<think><area>[]</area><text>x</text></think>"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, port: int, out: str, scenario: str) -> None:
    import torch.distributed as dist

    from sifmodel.rewards import JudgeFailure, SIFRewards

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # A short timeout: a rank left waiting in a collective fails the test instead of hanging it.
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=30))
    result: dict = {}
    try:
        columns = {"answer": ["(A)"] * 2, "question": ["q"] * 2, "sample_id": ["shared"] * 2}
        if scenario == "gather":
            rewards = SIFRewards()
            completions = [RIGHT, RIGHT] if rank == 0 else [WRONG, NO_ANSWER]
            result["scores"] = rewards.accuracy(completions, **columns)
            result["state"] = rewards.progress.values
            result["own"] = rewards.stats.as_dict()
            result["gathered"] = rewards.gathered_stats()
        else:  # "raise": rank 1's free-form answer cannot be judged (no judge model); rank 0's can
            # "raise_both": neither rank's can
            rewards = SIFRewards(failure_policy="raise")
            completions = [RIGHT, RIGHT] if rank == 0 and scenario == "raise" else [FREE_FORM, RIGHT]
            if rank == 1 or scenario == "raise_both":
                columns["answer"] = ["a red cup", "(A)"]  # free-form: for a judge model, not a rule
            try:
                rewards.accuracy(completions, **columns)
                result["raised"] = None
            except JudgeFailure as error:
                result["raised"] = str(error)
            dist.barrier()  # both reach here: neither is stuck in a collective the other left
    finally:
        Path(out, f"{rank}.json").write_text(json.dumps(result))
        dist.destroy_process_group()


def _run(tmp_path: Path, scenario: str) -> list[dict]:
    mp.spawn(_rank, args=(_free_port(), str(tmp_path), scenario), nprocs=2, join=True)
    return [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]


def test_progress_state_and_statistics_are_gathered_from_every_rank(tmp_path: Path) -> None:
    first, second = _run(tmp_path, "gather")
    assert first["scores"] == [1.0, 1.0] and second["scores"] == [0.0, 0.0]
    # The group mean over both ranks (1, 1, 0, 0), not each rank's own half.
    assert first["state"] == second["state"] == {"shared": 0.5}
    assert first["own"]["judge/rule"] == 2 and second["own"]["judge/rule"] == 1
    assert first["gathered"] == second["gathered"]
    assert first["gathered"]["judge/rule"] == 3 and first["gathered"]["judge/no_answer"] == 1


def test_a_judge_failure_under_raise_stops_every_rank_with_the_reason(tmp_path: Path) -> None:
    first, second = _run(tmp_path, "raise")
    assert first["raised"] == second["raised"]  # rank 0 had no failure of its own, and stops too
    assert "completion 0 (sample shared)" in first["raised"] and "no judge model" in first["raised"]


def test_a_failure_on_every_rank_names_the_first_and_counts_the_others(tmp_path: Path) -> None:
    first, second = _run(tmp_path, "raise_both")
    reason = "could not judge completion 0 (sample shared): free-form answer and no judge model configured"
    assert first["raised"] == second["raised"] == reason + " (and 1 more)"
