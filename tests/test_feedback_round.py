"""Tests for app/run/feedback_round.py's pure part: the size of the reasonability pool before a
round. (The round itself is driven end to end in test_trainer.py: commit, reject, cancel, skip.)"""

import torch

from app.run import feedback_round
from app.run import messages as msg
from app.run.feedback_round import PAINT_DONE_COMMANDS, reasonability_pool


def test_large_models_on_a_cpu_judge_a_small_pool():
    cpu = torch.device("cpu")
    assert reasonability_pool(cpu, feedback_round.LARGE_INPUT) == feedback_round.REASONABILITY_POOL_LARGE_CPU
    assert reasonability_pool(cpu, 224) == feedback_round.REASONABILITY_POOL_LARGE_CPU
    assert reasonability_pool(cpu, feedback_round.LARGE_INPUT - 1) == feedback_round.REASONABILITY_POOL
    assert reasonability_pool(torch.device("cuda"), 224) == feedback_round.REASONABILITY_POOL
    assert feedback_round.REASONABILITY_POOL_LARGE_CPU < feedback_round.REASONABILITY_POOL


def test_painting_ends_with_start_finetune_or_skip():
    assert set(PAINT_DONE_COMMANDS) == {msg.StartFinetune, msg.SkipFeedback}
