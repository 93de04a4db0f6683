"""Budget-constrained allocation: hand cases, the exact MILP optimum, and properties over random
instances (budget, caps and the per-user limit always hold)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promolake.promo.allocation import Cap, allocate, exact_allocation, pick


def test_pick_keeps_the_best_positive_options_per_user():
    user = np.array([0, 0, 0, 1, 1, 2])
    score = np.array([1.0, 3.0, 2.0, -1.0, 0.5, 0.0])
    assert pick(user, score, 1).tolist() == [False, True, False, False, True, False]
    assert pick(user, score, 2).tolist() == [False, True, True, False, True, False]
    # equal scores: the earlier option
    assert pick(np.array([0, 0]), np.array([1.0, 1.0]), 1).tolist() == [True, False]


def test_hand_case_budget_binds_and_the_best_ratio_wins():
    # three users, one offer each worth considering; budget 10 fits either A+B (profit 9) or C (profit 8)
    user = np.array([0, 1, 2])
    profit = np.array([5.0, 4.0, 8.0])
    cost = np.array([4.0, 6.0, 10.0])
    out = allocate(user, profit, cost, budget=10.0)
    assert out.chosen.tolist() == [True, True, False]
    assert out.cost == 10.0 and out.profit == 9.0
    # a user with two offers gets the one with the better profit - lambda x cost
    out = allocate(np.array([0, 0]), np.array([5.0, 6.0]), np.array([1.0, 5.0]), budget=100.0)
    assert out.chosen.tolist() == [False, True]          # budget not binding: highest profit
    out = allocate(np.array([0, 0]), np.array([5.0, 6.0]), np.array([1.0, 5.0]), budget=2.0)
    assert out.chosen.tolist() == [True, False]          # binding: the cheap one
    assert 0.25 <= out.lam <= 0.25 + 1e-6                # the price of money where the cheap one wins


def test_losing_options_are_never_chosen_even_with_money_left():
    out = allocate(np.array([0, 1]), np.array([-1.0, 0.0]), np.array([0.0, 1.0]), budget=100.0)
    assert not out.chosen.any() and out.cost == 0.0


def test_caps_on_cost_and_count_hold():
    rng = np.random.default_rng(3)
    n_users, n_offers = 300, 3
    user = np.repeat(np.arange(n_users), n_offers)
    offer = np.tile(np.arange(n_offers), n_users)
    profit = rng.gamma(2.0, 2.0, len(user))
    cost = rng.gamma(2.0, 1.0, len(user))
    caps = (Cap("per_offer_count", offer, np.array([20, 1000, 1000]), "count"),
            Cap("per_offer_cost", offer, np.array([1e9, 30.0, 1e9]), "cost"))
    out = allocate(user, profit, cost, budget=200.0, max_per_user=1, caps=caps)
    assert out.chosen[offer == 0].sum() <= 20
    assert cost[out.chosen & (offer == 1)].sum() <= 30.0
    assert out.cost <= 200.0
    best, opt = exact_allocation(user, profit, cost, 200.0, 1, caps)
    assert out.profit <= opt + 1e-6
    assert out.profit >= 0.98 * opt


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_per_user", [1, 2])
def test_lagrangian_is_within_a_small_gap_of_the_milp_optimum(seed, max_per_user):
    rng = np.random.default_rng(seed)
    n_users, n_offers = 150, 4
    user = np.repeat(np.arange(n_users), n_offers)
    cost = rng.gamma(2.0, 2.0, len(user))
    profit = cost * rng.uniform(-0.5, 2.5, len(user)) + rng.normal(0, 1, len(user))
    budget = 0.2 * cost[profit > 0].sum()
    out = allocate(user, profit, cost, budget, max_per_user)
    _, opt = exact_allocation(user, profit, cost, budget, max_per_user)
    assert out.cost <= budget
    assert out.profit <= opt + 1e-6
    # the relaxation loses at most about one option's profit; on 150 users that is a small gap
    assert opt - out.profit <= max(profit.max(), 0.0)
    assert out.profit >= 0.97 * opt


def test_exact_allocation_on_a_hand_case():
    chosen, opt = exact_allocation(np.array([0, 1, 2]), np.array([5.0, 4.0, 8.0]), np.array([4.0, 6.0, 10.0]), 10.0)
    assert chosen.tolist() == [True, True, False] and opt == 9.0


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="budget"):
        allocate(np.array([0]), np.array([1.0]), np.array([1.0]), budget=-1.0)
    with pytest.raises(ValueError, match="cost"):
        allocate(np.array([0]), np.array([1.0]), np.array([-1.0]), budget=1.0)
    with pytest.raises(ValueError, match="max_per_user"):
        allocate(np.array([0]), np.array([1.0]), np.array([1.0]), budget=1.0, max_per_user=0)
    with pytest.raises(ValueError, match="measure"):
        Cap("x", np.array([0]), np.array([1.0]), "euros")


@st.composite
def instances(draw):
    n_users = draw(st.integers(1, 40))
    n_offers = draw(st.integers(1, 4))
    n = n_users * n_offers
    money = st.floats(0.0, 50.0, allow_nan=False, allow_infinity=False)
    cost = np.array(draw(st.lists(money, min_size=n, max_size=n)))
    profit = np.array(draw(st.lists(st.floats(-20.0, 60.0, allow_nan=False), min_size=n, max_size=n)))
    budget = draw(st.floats(0.0, 400.0))
    offer = np.tile(np.arange(n_offers), n_users)
    caps = []
    if draw(st.booleans()):
        caps.append(Cap("offer_count", offer, np.array(draw(st.lists(st.integers(0, 30), min_size=n_offers,
                                                                      max_size=n_offers)), dtype=float), "count"))
    if draw(st.booleans()):
        caps.append(Cap("offer_cost", offer, np.array(draw(st.lists(money, min_size=n_offers, max_size=n_offers))),
                        "cost"))
    return np.repeat(np.arange(n_users), n_offers), profit, cost, budget, draw(st.integers(1, 3)), caps


@settings(max_examples=300, deadline=None)
@given(instances())
def test_budget_caps_and_per_user_limit_always_hold(instance):
    user, profit, cost, budget, max_per_user, caps = instance
    out = allocate(user, profit, cost, budget, max_per_user, caps)
    assert cost[out.chosen].sum() <= budget + 1e-9
    assert np.isclose(out.cost, cost[out.chosen].sum())
    assert np.bincount(user[out.chosen], minlength=user.max() + 1).max(initial=0) <= max_per_user
    assert (profit[out.chosen] > 0).all()
    for cap in caps:
        unit = cost if cap.measure == "cost" else np.ones(len(cost))
        used = np.bincount(cap.group[out.chosen], weights=unit[out.chosen], minlength=len(cap.limit))
        assert (used <= cap.limit + 1e-9).all()
