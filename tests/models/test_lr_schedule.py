"""Learning-rate schedules against their formulas (BasicSR semantics: iteration t uses step t - 1)."""

from __future__ import annotations

import math

import pytest
import torch

from restore.models.lr_schedule import LRController, build_schedule

BASE = 1e-3


def _controller(spec: dict, warmup: int = -1, total: int | None = None) -> LRController:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=BASE)
    return LRController(optimizer, build_schedule(spec, total), warmup)


def test_multistep_matches_torch_multisteplr() -> None:
    milestones, gamma = [2, 5, 5, 9], 0.5  # 5 listed twice: decays twice
    ours = _controller({"type": "MultiStepLR", "milestones": milestones, "gamma": gamma})
    param = torch.nn.Parameter(torch.zeros(1))
    reference_opt = torch.optim.SGD([param], lr=BASE)
    reference = torch.optim.lr_scheduler.MultiStepLR(reference_opt, milestones=milestones, gamma=gamma)
    for iteration in range(1, 13):
        if iteration > 1:
            reference_opt.step()
            reference.step()
        assert ours.lrs_at(iteration)[0] == pytest.approx(reference_opt.param_groups[0]["lr"], rel=1e-12)


def test_multistep_restarts_by_hand() -> None:
    sched = _controller(
        {"type": "MultiStepRestartLR", "milestones": [2, 6], "gamma": 0.5, "restarts": [4], "restart_weights": [0.5]}
    )
    # steps 0..7 (iterations 1..8): 2 halves; restart at 4 sets base * 0.5; 6 halves again
    expected = [BASE, BASE, BASE / 2, BASE / 2, BASE / 2, BASE / 2, BASE / 4, BASE / 4]
    assert [sched.lrs_at(t)[0] for t in range(1, 9)] == pytest.approx(expected, rel=1e-12)


def _cosine(step: int, start: int, period: int, base: float, eta_min: float, weight: float) -> float:
    return eta_min + weight * 0.5 * (base - eta_min) * (1 + math.cos(math.pi * (step - start) / period))


def test_cosine_restart_piecewise_formula() -> None:
    periods, weights, eta_min = [4, 6], [1.0, 0.5], 1e-6
    sched = _controller(
        {"type": "CosineAnnealingRestartLR", "periods": periods, "restart_weights": weights, "eta_min": eta_min}
    )
    for iteration in range(1, 11):
        step = iteration - 1
        if step <= 4:  # a step equal to a cycle end belongs to that cycle (lr = eta_min there)
            want = _cosine(step, 0, 4, BASE, eta_min, 1.0)
        else:
            want = _cosine(step, 4, 6, BASE, eta_min, 0.5)
        assert sched.lrs_at(iteration)[0] == pytest.approx(want, rel=1e-12)
    assert sched.lrs_at(5)[0] == pytest.approx(eta_min)


def test_drsformer_cyclic_schedule() -> None:
    base = 3e-4
    param = torch.nn.Parameter(torch.zeros(1))
    spec = {
        "type": "CosineAnnealingRestartCyclicLR",
        "periods": [92000, 208000],
        "restart_weights": [1, 1],
        "eta_mins": [3e-4, 1e-6],
    }
    sched = LRController(torch.optim.AdamW([param], lr=base), build_schedule(spec, 300000))
    for iteration in (1, 50000, 92001):
        assert sched.lrs_at(iteration)[0] == pytest.approx(base, rel=1e-12)  # first cycle: floor == base
    for iteration in (92002, 196000, 300000):
        want = 1e-6 + 0.5 * (base - 1e-6) * (1 + math.cos(math.pi * (iteration - 1 - 92000) / 208000))
        assert sched.lrs_at(iteration)[0] == pytest.approx(want, rel=1e-12)
    assert sched.lrs_at(300000)[0] == pytest.approx(1e-6, rel=1e-3)


def test_linear_warmup_then_schedule() -> None:
    sched = _controller({"type": "MultiStepLR", "milestones": [6], "gamma": 0.1}, warmup=4)
    assert [sched.lrs_at(t)[0] for t in (1, 2, 3)] == pytest.approx([BASE / 4, BASE / 2, 3 * BASE / 4])
    assert sched.lrs_at(4)[0] == pytest.approx(BASE)
    assert sched.lrs_at(7)[0] == pytest.approx(BASE * 0.1)


def test_controller_writes_param_groups_and_round_trips() -> None:
    sched = _controller({"type": "MultiStepLR", "milestones": [1], "gamma": 0.5})
    assert sched.apply(3) == [BASE / 2]
    assert sched.optimizer.param_groups[0]["lr"] == BASE / 2
    other = _controller({"type": "MultiStepLR", "milestones": [1], "gamma": 0.5})
    other.base_lrs = [0.0]
    other.load_state_dict(sched.state_dict())
    assert other.base_lrs == [BASE]  # the base rate survives even though param_groups now hold a decayed lr


def test_schedule_errors() -> None:
    with pytest.raises(KeyError, match="supported: MultiStepLR"):
        build_schedule({"type": "StepLR"})
    with pytest.raises(ValueError, match=r"sum to 10 steps but train\.total_iter=20"):
        build_schedule({"type": "CosineAnnealingRestartLR", "periods": [10]}, total_iter=20)
    with pytest.raises(ValueError, match="same length"):
        build_schedule({"type": "CosineAnnealingRestartLR", "periods": [5, 5], "restart_weights": [1]})
    with pytest.raises(TypeError, match=r"train\.scheduler: MultiStepLR"):
        build_schedule({"type": "MultiStepLR", "milestones": [1], "T_max": 3})
