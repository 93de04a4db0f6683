"""Budget-constrained offer allocation: which (user, offer) options to give so that the total expected
incremental profit is highest while the total expected cost stays within the budget, every user gets
at most `max_per_user` offers, and optional caps (per offer, per category: on cost or on count) hold.

Method (Lagrangian relaxation, so users decide independently and the work scales on Spark):
1. For multipliers lambda (budget) and mu_g (one per capped group), every user keeps the at most
   `max_per_user` options with the highest positive adjusted score
   profit - lambda * cost - sum over the option's capped groups of mu_g * (cost or 1).
2. lambda is the smallest value whose picks cost no more than the budget (bisection: total cost falls
   as lambda grows), and each mu_g likewise for its group's cap; a few rounds alternate the two.
3. Repair: in a group still over its cap, the lowest-scored picks are dropped until it fits.
4. Fill: leftover budget goes, best profit/cost ratio first, to options that fit every constraint.
Options with profit <= 0 are never chosen. The budget and the caps hold by construction (steps 2-4
only ever keep totals within limits); `exact_allocation` solves the same problem as a MILP (scipy's
HiGHS) to measure the gap on instances small enough for it.

`allocate` works on numpy arrays (one entry per option); `allocate_spark` runs the same steps on a
DataFrame of options with one Spark aggregation per bisection step.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from promolake.common.arrays import rank_within

MEASURES = ("cost", "count")


@dataclass(frozen=True)
class Cap:
    """A family of caps: option i belongs to group[i] (-1: to none); group g may use at most limit[g]
    of the measure ("cost": expected cost, "count": number of offers). `name` appears in reports."""

    name: str
    group: np.ndarray
    limit: np.ndarray
    measure: str = "cost"

    def __post_init__(self):
        if self.measure not in MEASURES:
            raise ValueError(f"cap {self.name!r}: measure must be one of {MEASURES}, got {self.measure!r}")
        if len(self.limit) and np.min(self.limit) < 0:
            raise ValueError(f"cap {self.name!r}: limits must be >= 0")
        if len(self.group) and np.max(self.group) >= len(self.limit):
            raise ValueError(f"cap {self.name!r}: group index without a limit")


@dataclass(frozen=True)
class Allocation:
    """The chosen options (bool per option), the multipliers found and the totals."""

    chosen: np.ndarray
    lam: float
    mu: tuple[np.ndarray, ...]
    cost: float
    profit: float
    rounds: int
    filled: int = 0
    repaired: int = 0


def _check(user: np.ndarray, profit: np.ndarray, cost: np.ndarray, budget: float, max_per_user: int) -> None:
    if not (len(user) == len(profit) == len(cost)):
        raise ValueError(f"user, profit and cost differ in length: {len(user)}, {len(profit)}, {len(cost)}")
    if not np.isfinite(budget) or budget < 0:
        raise ValueError(f"budget must be a finite number >= 0, got {budget}")
    if max_per_user < 1:
        raise ValueError(f"max_per_user must be >= 1, got {max_per_user}")
    if len(cost) and (not np.all(np.isfinite(cost)) or np.min(cost) < 0):
        raise ValueError("every option's expected cost must be finite and >= 0")
    if len(profit) and not np.all(np.isfinite(profit)):
        raise ValueError("every option's expected profit must be finite")


def pick(user: np.ndarray, score: np.ndarray, max_per_user: int) -> np.ndarray:
    """Return a bool mask: for every user, its at most max_per_user options with the highest positive
    score (equal scores: the earlier option)."""
    order = np.lexsort((np.arange(len(user)), -score, user))
    rank = rank_within(user[order])
    keep = np.zeros(len(user), dtype=bool)
    keep[order] = (rank < max_per_user) & (score[order] > 0)
    return keep


def _usage(cap: Cap, chosen: np.ndarray, cost: np.ndarray) -> np.ndarray:
    inside = chosen & (cap.group >= 0)
    weight = cost[inside] if cap.measure == "cost" else np.ones(int(inside.sum()))
    return np.bincount(cap.group[inside], weights=weight, minlength=len(cap.limit))


def _penalty(caps: Sequence[Cap], mu: Sequence[np.ndarray], cost: np.ndarray) -> np.ndarray:
    out = np.zeros(len(cost))
    for cap, m in zip(caps, mu):
        inside = cap.group >= 0
        per_unit = cost[inside] if cap.measure == "cost" else 1.0
        out[inside] += m[cap.group[inside]] * per_unit
    return out


def _ceiling(profit: np.ndarray, unit: np.ndarray) -> float:
    """A multiplier at which every option with unit > 0 scores <= 0 (penalties only lower scores)."""
    costly = (unit > 0) & (profit > 0)
    return max(1.0, float(np.max(profit[costly] / unit[costly]))) * (1 + 1e-9) if costly.any() else 1.0


def _search(fits, hi: np.ndarray, active: np.ndarray, points: int, steps: int, rel_tol: float) -> np.ndarray:
    """Per active group, the smallest multiplier x in (0, hi] (up to rel_tol) with fits(x), for fits
    turning True as x grows and True at hi. Each step tries `points` evenly spaced values inside the
    bracket at once (one pass over the options), so the bracket shrinks (points + 1)-fold per pass.
    fits maps a [points, groups] matrix of multipliers to a bool matrix of the same shape."""
    lo = np.zeros(len(hi))
    frac = np.arange(1, points + 1) / (points + 1)
    columns = np.arange(len(hi))
    for _ in range(steps):
        if np.all(hi[active] - lo[active] <= rel_tol * hi[active]):
            break
        trial = lo + np.outer(frac, hi - lo)
        ok = fits(trial)
        first = np.where(ok.any(axis=0), ok.argmax(axis=0), points)   # first trial that fits (points: none)
        new_hi = np.where(first < points, trial[np.minimum(first, points - 1), columns], hi)
        new_lo = np.where(first > 0, trial[np.maximum(first - 1, 0), columns], lo)
        hi, lo = np.where(active, new_hi, hi), np.where(active, new_lo, lo)
    return hi


class _Problem(ABC):
    """What the multiplier search needs from the options, whatever holds them (numpy or Spark)."""

    limits: list[np.ndarray]

    @abstractmethod
    def evaluate(self, trials: list[tuple[float, list[np.ndarray]]]) -> list[tuple[float, list[np.ndarray]]]:
        """For each (lambda, mu per family): (total cost, usage per cap family and group) of the picks."""

    @abstractmethod
    def budget_ceiling(self) -> float:
        """A lambda at which no option with a cost scores above 0."""

    @abstractmethod
    def group_ceilings(self, family: int) -> np.ndarray:
        """Per group of the family: a mu at which none of its options scores above 0."""


def search_multipliers(problem: _Problem, budget: float, rounds: int = 6, points: int = 15, steps: int = 12,
                       rel_tol: float = 1e-9) -> tuple[float, list[np.ndarray], int]:
    """Return (lambda, mu per cap family, rounds used): lambda, the smallest multiplier whose picks fit
    the budget, then jointly per family the multipliers of the groups over their caps; a few rounds
    alternate the two. Each search step is one evaluation of `points` trials."""
    mu = [np.zeros(len(limit)) for limit in problem.limits]
    one = np.ones(1, dtype=bool)
    lam, used = 0.0, 0
    for used in range(1, rounds + 1):
        if problem.evaluate([(0.0, mu)])[0][0] <= budget:
            lam = 0.0
        else:
            lam = float(_search(lambda t: np.array([[c <= budget] for c, _ in problem.evaluate(
                [(float(x), mu) for x in t[:, 0]])]), np.array([problem.budget_ceiling()]), one, points, steps,
                rel_tol)[0])
        violated = False
        for f, limit in enumerate(problem.limits):
            over = problem.evaluate([(lam, mu)])[0][1][f] > limit * (1 + rel_tol) + 1e-12
            if not over.any():
                continue
            violated = True

            def fits(t, f=f, over=over):
                trials = [(lam, [np.where(over, row, m) if k == f else m for k, m in enumerate(mu)]) for row in t]
                return np.array([usage[f] <= problem.limits[f] for _, usage in problem.evaluate(trials)])

            mu[f] = np.where(over, _search(fits, np.maximum(mu[f], problem.group_ceilings(f)), over, points, steps,
                                           rel_tol), mu[f])
        if not violated:
            break
    return lam, mu, used


class _ArrayProblem(_Problem):
    def __init__(self, user, profit, cost, max_per_user, caps: Sequence[Cap]):
        self.user, self.profit, self.cost, self.n, self.caps = user, profit, cost, max_per_user, caps
        self.limits = [np.asarray(c.limit, dtype=float) for c in caps]

    def score(self, lam: float, mu: Sequence[np.ndarray]) -> np.ndarray:
        return self.profit - lam * self.cost - _penalty(self.caps, mu, self.cost)

    def evaluate(self, trials):
        out = []
        for lam, mu in trials:
            chosen = pick(self.user, self.score(lam, mu), self.n)
            out.append((float(self.cost[chosen].sum()), [_usage(c, chosen, self.cost) for c in self.caps]))
        return out

    def budget_ceiling(self):
        return _ceiling(self.profit, self.cost)

    def group_ceilings(self, family):
        cap = self.caps[family]
        unit = self.cost if cap.measure == "cost" else np.ones(len(self.cost))
        return np.array([_ceiling(self.profit[cap.group == g], unit[cap.group == g]) for g in range(len(cap.limit))])


def allocate(user: np.ndarray, profit: np.ndarray, cost: np.ndarray, budget: float, max_per_user: int = 1,
             caps: Sequence[Cap] = (), rounds: int = 6, points: int = 15, steps: int = 12,
             rel_tol: float = 1e-9, fill: bool = True) -> Allocation:
    """Choose options maximising total profit with total cost <= budget (see the module docstring).

    Args:
        user: user index of each option (one option per user and offer).
        profit: expected incremental profit of each option (already net of its expected cost).
        cost: expected cost of each option, >= 0 (what the budget is spent on).
        budget: the most the chosen options may cost in total.
        max_per_user: at most this many options per user.
        caps: optional cap families (per offer, per category ...).
    """
    user, profit, cost = np.asarray(user), np.asarray(profit, dtype=float), np.asarray(cost, dtype=float)
    _check(user, profit, cost, budget, max_per_user)
    problem = _ArrayProblem(user, profit, cost, max_per_user, caps)
    lam, mu, used = search_multipliers(problem, budget, rounds, points, steps, rel_tol)
    score = problem.score(lam, mu)
    chosen, repaired = _repair(pick(user, score, max_per_user), score, cost, caps)
    if cost[chosen].sum() > budget:  # cannot happen: lam is on the feasible side of its bisection
        raise AssertionError("allocation exceeds the budget")
    filled = 0
    if fill:
        order = np.flatnonzero(~chosen & (profit > 0))
        filled = fill_greedy(order, chosen, user, profit, cost, budget - cost[chosen].sum(), max_per_user,
                             caps, [c.limit - _usage(c, chosen, cost) for c in caps],
                             np.bincount(user[chosen], minlength=int(user.max()) + 1 if len(user) else 0))
    return Allocation(chosen, lam, tuple(mu), float(cost[chosen].sum()), float(profit[chosen].sum()),
                      used, filled, repaired)


def _repair(chosen: np.ndarray, score: np.ndarray, cost: np.ndarray, caps: Sequence[Cap]) -> tuple[np.ndarray, int]:
    """Drop the lowest-scored chosen options of every group over its cap until it fits."""
    chosen = chosen.copy()
    dropped = 0
    for cap in caps:
        usage = _usage(cap, chosen, cost)
        for g in np.flatnonzero(usage > cap.limit):
            idx = np.flatnonzero(chosen & (cap.group == g))
            idx = idx[np.lexsort((idx, -score[idx]))]
            unit = cost[idx] if cap.measure == "cost" else np.ones(len(idx))
            over = np.cumsum(unit) > cap.limit[g]
            chosen[idx[over]] = False
            dropped += int(over.sum())
    return chosen, dropped


def fill_greedy(candidates: np.ndarray, chosen: np.ndarray, user: np.ndarray, profit: np.ndarray,
                cost: np.ndarray, left: float, max_per_user: int, caps: Sequence[Cap], room: list[np.ndarray],
                taken: np.ndarray) -> int:
    """Add candidate options (indices), best profit/cost first (cost 0 first, then the earlier index),
    while the budget left, the cap room and the per-user count allow; changes chosen, room and taken
    in place and returns how many were added."""
    candidates = candidates[(profit[candidates] > 0) & (cost[candidates] <= left)]
    c = cost[candidates]
    ratio = np.where(c > 0, profit[candidates] / np.maximum(c, 1e-300), np.inf)
    added = 0
    for i in candidates[np.lexsort((candidates, -ratio))]:
        if cost[i] > left or taken[user[i]] >= max_per_user:
            continue
        units = [(f, cap.group[i], cost[i] if cap.measure == "cost" else 1.0)
                 for f, cap in enumerate(caps) if cap.group[i] >= 0]
        if any(u > room[f][g] for f, g, u in units):
            continue
        chosen[i] = True
        left -= cost[i]
        taken[user[i]] += 1
        for f, g, u in units:
            room[f][g] -= u
        added += 1
    return added


def exact_allocation(user: np.ndarray, profit: np.ndarray, cost: np.ndarray, budget: float, max_per_user: int = 1,
                     caps: Sequence[Cap] = (), time_limit: float = 60.0) -> tuple[np.ndarray, float]:
    """Solve the allocation exactly as a 0/1 MILP with scipy's HiGHS; returns (chosen, optimal profit).
    For checking `allocate` on small instances (hundreds to a few thousand options)."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, vstack

    user, profit, cost = np.asarray(user), np.asarray(profit, dtype=float), np.asarray(cost, dtype=float)
    _check(user, profit, cost, budget, max_per_user)
    n = len(user)
    if n == 0:
        return np.zeros(0, dtype=bool), 0.0
    users, inverse = np.unique(user, return_inverse=True)
    rows = [csr_matrix(cost.reshape(1, -1)),
            csr_matrix((np.ones(n), (inverse, np.arange(n))), shape=(len(users), n))]
    upper = [np.array([budget]), np.full(len(users), float(max_per_user))]
    for cap in caps:
        inside = np.flatnonzero(cap.group >= 0)
        unit = cost[inside] if cap.measure == "cost" else np.ones(len(inside))
        rows.append(csr_matrix((unit, (cap.group[inside], inside)), shape=(len(cap.limit), n)))
        upper.append(np.asarray(cap.limit, dtype=float))
    A = vstack(rows).tocsr()
    res = milp(-profit, integrality=np.ones(n), bounds=Bounds(0, 1),
               constraints=LinearConstraint(A, -np.inf, np.concatenate(upper)),
               options={"time_limit": time_limit, "mip_rel_gap": 1e-9})
    if res.x is None:
        raise RuntimeError(f"HiGHS found no solution: {res.message}")
    chosen = res.x > 0.5
    return chosen, float(profit[chosen].sum())


# ---------------------------------------------------------------------------------------------
# The same allocation on Spark


@dataclass(frozen=True)
class SparkCap:
    """A cap family over a column of the options DataFrame: the options whose `column` equals a key
    of `limits` may use at most that limit of `measure` ("cost" or "count"); other values: no cap."""

    name: str
    column: str
    limits: dict
    measure: str = "cost"

    def __post_init__(self):
        if self.measure not in MEASURES:
            raise ValueError(f"cap {self.name!r}: measure must be one of {MEASURES}, got {self.measure!r}")
        bad = [k for k, v in self.limits.items() if v is None or v < 0]
        if bad:
            raise ValueError(f"cap {self.name!r}: limits must be >= 0 (bad: {bad})")


class _SparkProblem(_Problem):
    """Options as a cached DataFrame partitioned by user: every multiplier trial is one Spark job."""

    def __init__(self, options, user_col: str, tiebreak: Sequence[str], max_per_user: int,
                 caps: Sequence[SparkCap], persist: bool = True):
        from pyspark.sql import functions as F

        self.F, self.caps, self.n = F, caps, max_per_user
        self.user_col, self.tiebreak = user_col, list(tiebreak)
        self.keys = [list(c.limits) for c in caps]
        self.limits = [np.array([float(c.limits[k]) for k in keys]) for c, keys in zip(caps, self.keys)]
        cols = [F.col(c.column).alias(f"_cap{f}") for f, c in enumerate(caps)]
        self.options = options.select("*", *cols).where(F.col("profit") > 0)
        if persist:
            self.options = self.options.repartition(F.col(user_col)).persist()
            self.options.count()

    def _unit(self, f: int):
        return self.F.col("cost") if self.caps[f].measure == "cost" else self.F.lit(1.0)

    def _in_group(self, f: int, key):
        return self.F.col(f"_cap{f}") == self.F.lit(key)

    def score(self, lam: float, mu: Sequence[np.ndarray]):
        F = self.F
        score = F.col("profit") - F.lit(float(lam)) * F.col("cost")
        for f, keys in enumerate(self.keys):
            for key, m in zip(keys, mu[f]):
                if m > 0:
                    score = score - F.when(self._in_group(f, key), F.lit(float(m)) * self._unit(f)).otherwise(0.0)
        return score

    def picks(self, lam: float, mu: Sequence[np.ndarray]):
        from pyspark.sql import Window

        F = self.F
        order = [F.col("_score").desc()] + [F.col(c).asc() for c in self.tiebreak]
        w = Window.partitionBy(self.user_col).orderBy(*order)
        return (self.options.withColumn("_score", self.score(lam, mu)).where(F.col("_score") > 0)
                .withColumn("_rank", F.row_number().over(w)).where(F.col("_rank") <= self.n))

    def evaluate(self, trials):
        """All trials in one Spark job: the options are crossed with the trials (a broadcast table with
        one row per trial: its lambda and every group's mu) and ranked per (user, trial)."""
        from pyspark.sql import Window

        F = self.F
        names = [f"m{f}_{i}" for f, keys in enumerate(self.keys) for i in range(len(keys))]
        rows = [(k, float(lam), *[float(x) for m in mu for x in m]) for k, (lam, mu) in enumerate(trials)]
        table = self.options.sparkSession.createDataFrame(rows, ["_trial", "_lam", *names])
        score = F.col("profit") - F.col("_lam") * F.col("cost")
        for f, keys in enumerate(self.keys):
            for i, key in enumerate(keys):
                score = score - F.when(self._in_group(f, key), F.col(f"m{f}_{i}") * self._unit(f)).otherwise(0.0)
        order = [F.col("_score").desc()] + [F.col(c).asc() for c in self.tiebreak]
        w = Window.partitionBy(self.user_col, "_trial").orderBy(*order)
        picked = (self.options.crossJoin(F.broadcast(table)).withColumn("_score", score).where(F.col("_score") > 0)
                  .withColumn("_rank", F.row_number().over(w)).where(F.col("_rank") <= self.n))
        by_trial = {r["_trial"]: r for r in picked.groupBy("_trial").agg(*self._usage_aggs()).collect()}
        return [self._usage_row(by_trial.get(k)) for k in range(len(trials))]

    def _usage_aggs(self):
        F = self.F
        aggs = [F.sum("cost").alias("cost")]
        for f, keys in enumerate(self.keys):
            aggs += [F.sum(F.when(self._in_group(f, k), self._unit(f)).otherwise(0.0)).alias(f"u{f}_{i}")
                     for i, k in enumerate(keys)]
        return aggs

    def _usage_row(self, row) -> tuple[float, list[np.ndarray]]:
        if row is None:
            return 0.0, [np.zeros(len(keys)) for keys in self.keys]
        return float(row["cost"] or 0.0), [np.array([row[f"u{f}_{i}"] or 0.0 for i in range(len(keys))])
                                           for f, keys in enumerate(self.keys)]

    def usage_of(self, picked) -> tuple[float, list[np.ndarray]]:
        """(total cost, usage per cap family and group) of a DataFrame of picked options."""
        return self._usage_row(picked.agg(*self._usage_aggs()).first())

    def budget_ceiling(self):
        F = self.F
        r = self.options.where(F.col("cost") > 0).agg(F.max(F.col("profit") / F.col("cost"))).first()[0]
        return max(1.0, r or 0.0) * (1 + 1e-9)

    def group_ceilings(self, family):
        F = self.F
        col = (F.col("profit") / self._unit(family)) if self.caps[family].measure == "cost" else F.col("profit")
        rows = {r[0]: r[1] for r in self.options.where(self._unit(family) > 0).groupBy(f"_cap{family}")
                .agg(F.max(col)).collect()}
        return np.array([max(1.0, rows.get(k) or 0.0) * (1 + 1e-9) for k in self.keys[family]])


def allocate_spark(options, budget: float, max_per_user: int = 1, caps: Sequence[SparkCap] = (),
                   user_col: str = "user_id", tiebreak: Sequence[str] = ("offer_id",), rounds: int = 6,
                   points: int = 15, steps: int = 12, rel_tol: float = 1e-9, fill_limit: int = 200_000,
                   keep=None):
    """`allocate` on a DataFrame of options (one row per user and offer with `profit` and `cost`
    columns, plus the columns the caps name); equal scores go to the smaller `tiebreak` values.

    Returns (DataFrame, Allocation): the options with profit > 0 and columns `chosen` (bool) and
    `score` (profit - lambda x cost - cap penalties at the multipliers found), and a summary whose
    `chosen` is None. The fill step collects the best `fill_limit` unchosen options by profit/cost
    to the driver.

    The returned frame reads from cached data: pass `keep` (a promolake.common.spark.PersistScope) to
    release it with the caller's other frames; without it the cache stays until the session ends. The
    intermediate frames of the repair steps are released here, and everything on failure.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from promolake.common.spark import PersistScope

    missing = [c for c in (user_col, "profit", "cost", *tiebreak, *(c.column for c in caps)) if c not in options.columns]
    if missing:
        raise ValueError(f"allocate_spark: options lack the columns {missing}")
    _check(np.zeros(0), np.zeros(0), np.zeros(0), budget, max_per_user)
    if options.where((F.col("cost") < 0) | F.col("cost").isNull() | F.isnan("cost") | F.col("profit").isNull()
                     | F.isnan("profit")).limit(1).count():
        raise ValueError("every option's expected cost must be finite and >= 0 and its profit finite")
    problem = _SparkProblem(options, user_col, tiebreak, max_per_user, caps)
    mine = PersistScope()
    try:
        lam, mu, used = search_multipliers(problem, budget, rounds, points, steps, rel_tol)
        picks = problem.picks(lam, mu).select(user_col, *tiebreak, "_rank")
        scored = (problem.options.withColumn("score", problem.score(lam, mu))
                  .join(picks, [user_col, *tiebreak], "left").withColumn("chosen", F.col("_rank").isNotNull()))
        repaired = 0
        for f in range(len(caps)):   # repair: drop the lowest-scored picks of a group over its cap
            limit = F.create_map(*[x for k, v in caps[f].limits.items() for x in (F.lit(k), F.lit(float(v)))])
            w = (Window.partitionBy(f"_cap{f}", "chosen").orderBy(F.col("score").desc(), *[F.col(c) for c in tiebreak])
                 .rowsBetween(Window.unboundedPreceding, Window.currentRow))
            unit = F.col("cost") if caps[f].measure == "cost" else F.lit(1.0)
            over = F.col("chosen") & (F.sum(unit).over(w) > F.coalesce(limit[F.col(f"_cap{f}")], F.lit(float("inf"))))
            scored = mine(scored.withColumn("_drop", over))
            n = scored.where("_drop").count()
            repaired += n
            scored = scored.withColumn("chosen", F.col("chosen") & ~F.col("_drop")).drop("_drop")
        scored = mine(scored.drop("_rank"))
        spent, usage = problem.usage_of(scored.where("chosen"))
        if spent > budget:
            raise AssertionError("allocation exceeds the budget")
        filled = 0
        if fill_limit > 0 and spent < budget:
            filled, scored = _spark_fill(scored, problem, budget - spent, usage, fill_limit, tiebreak, mine)
        row = scored.where("chosen").agg(F.sum("cost"), F.sum("profit")).first()   # computes the last one
        mine.release(but=scored)
        if keep is not None:
            keep.adopt(mine)
        out = scored.drop(*[f"_cap{f}" for f in range(len(caps))])
        return out, Allocation(None, lam, tuple(mu), float(row[0] or 0.0), float(row[1] or 0.0), used, filled,
                               repaired)
    except BaseException:
        mine.release()
        raise
    finally:
        problem.options.unpersist()


def _spark_fill(scored, problem: _SparkProblem, left: float, usage: list[np.ndarray], fill_limit: int,
                tiebreak: Sequence[str], keep):
    """The greedy fill of `allocate` over the best fill_limit unchosen options, on the driver."""
    F, user_col, n = problem.F, problem.user_col, problem.n
    taken = scored.where("chosen").groupBy(user_col).agg(F.count("*").alias("_taken"))
    ratio = F.when(F.col("cost") > 0, F.col("profit") / F.col("cost")).otherwise(F.lit(float("inf")))
    cand = (scored.where(~F.col("chosen") & (F.col("cost") <= F.lit(left)))
            .join(taken, user_col, "left").where(F.coalesce("_taken", F.lit(0)) < n)
            .withColumn("_ratio", ratio).orderBy(F.col("_ratio").desc(), F.col(user_col), *[F.col(c) for c in tiebreak])
            .limit(fill_limit).toPandas())
    if cand.empty:
        return 0, scored
    users, inv = np.unique(cand[user_col].to_numpy(), return_inverse=True)
    taken_now = cand.groupby(user_col)["_taken"].first().reindex(users).fillna(0).to_numpy().astype(np.int64)
    caps = [Cap(c.name, np.array([keys.index(v) if v in keys else -1 for v in cand[f"_cap{f}"]], dtype=np.int64),
                problem.limits[f], c.measure) for f, (c, keys) in enumerate(zip(problem.caps, problem.keys))]
    room = [problem.limits[f] - usage[f] for f in range(len(caps))]
    chosen = np.zeros(len(cand), dtype=bool)
    added = fill_greedy(np.arange(len(cand)), chosen, inv, cand["profit"].to_numpy(float),
                        cand["cost"].to_numpy(float), left, n, caps, room, taken_now)
    if not added:
        return 0, scored
    spark = scored.sparkSession
    add = spark.createDataFrame(cand.loc[chosen, [user_col, *tiebreak]]).withColumn("_add", F.lit(True))
    out = keep(scored.join(add, [user_col, *tiebreak], "left")
               .withColumn("chosen", F.col("chosen") | F.coalesce("_add", F.lit(False))).drop("_add"))
    return added, out


def policy_picks(options, allocation: Allocation, max_per_user: int = 1, caps: Sequence[SparkCap] = (),
                 user_col: str = "user_id", tiebreak: Sequence[str] = ("offer_id",)):
    """options with a bool `policy_pick`: whether the policy's rule at the allocation's multipliers (each
    user's best positive adjusted scores, before repair and fill) picks the option. For users outside the
    allocation (e.g. the exploration arm): what the policy would have given them."""
    from pyspark.sql import functions as F

    problem = _SparkProblem(options, user_col, tiebreak, max_per_user, caps, persist=False)
    picked = (problem.picks(allocation.lam, list(allocation.mu)).select(user_col, *tiebreak)
              .withColumn("policy_pick", F.lit(True)))
    return (options.join(picked, [user_col, *tiebreak], "left")
            .withColumn("policy_pick", F.coalesce("policy_pick", F.lit(False))))
