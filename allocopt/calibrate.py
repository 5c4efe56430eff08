"""Reviewer calibration: individual reviews become one score per proposal, with its uncertainty.

Three methods, each documented in the README with its formula:

- ``mean``: the plain mean of a proposal's reviews;
- ``standardised``: each review relative to its reviewer's own mean and spread, both
  shrunk toward the whole round's for reviewers with few reviews, mapped back to the scale;
- ``model``: a random-effects model, review = mu + quality + reviewer bias (+ panel bias)
  + noise, with the variances fitted by maximum likelihood and each proposal's quality
  read from its posterior mean and standard deviation.

Every method gives a score on the round's scale (clipped to it and rounded to 4 decimals,
so the rest of allocopt computes with it exactly), an interval, and the expected rank
with an interval, drawn from independent normal approximations with a fixed seed
(deterministic). Proposals without reviews keep their score, with no uncertainty.
Pure numpy and scipy; nothing here knows about the solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from scipy.sparse import coo_matrix
from scipy.stats import norm

from allocopt.round import Round, review_value

METHODS = ("mean", "standardised", "model")
RANK_DRAWS = 2000  # Monte Carlo draws behind each expected rank and its interval (fewer in huge rounds)
RANK_SEED = 20260101  # fixed: the same round always gives the same rank intervals
DECIMALS = 4


@dataclass(frozen=True)
class Calibrated:
    """One proposal's calibrated score on the round's scale, its interval, and its rank."""

    score: float
    low: float
    high: float
    sd: float
    reviews: int
    expected_rank: float
    rank_low: int
    rank_high: int


@dataclass(frozen=True)
class Estimate:
    """A method's raw estimate per proposal: the score and its standard deviation."""

    score: dict[str, float]
    sd: dict[str, float]


def calibrate(rnd: Round, method: str | None = None) -> dict[str, Calibrated]:
    """Every proposal's calibrated score under ``method`` (default: the policy's; 'none' gives
    each proposal its score with the plain mean's uncertainty around it)."""
    method = method or rnd.policy.reviews.calibration
    estimate = _estimate(rnd, method)
    lo, hi = rnd.score_scale.min, rnd.score_scale.max
    z = float(norm.ppf(0.5 + rnd.policy.reviews.interval / 2))
    ids = sorted(p.id for p in rnd.proposals)
    mean = np.array([estimate.score[pid] for pid in ids])
    sd = np.array([estimate.sd[pid] for pid in ids])
    ranks = _rank_draws(mean, sd)
    tail = (1 - rnd.policy.reviews.interval) / 2
    counts = {p.id: len(p.reviews or []) for p in rnd.proposals}
    out = {}
    for k, pid in enumerate(ids):
        out[pid] = Calibrated(
            score=_on_scale(mean[k], lo, hi),
            low=_on_scale(mean[k] - z * sd[k], lo, hi),
            high=_on_scale(mean[k] + z * sd[k], lo, hi),
            sd=round(float(sd[k]), DECIMALS),
            reviews=counts[pid],
            expected_rank=round(float(ranks[:, k].mean()), 2),
            rank_low=int(np.quantile(ranks[:, k], tail, method="lower")),
            rank_high=int(np.quantile(ranks[:, k], 1 - tail, method="higher")),
        )
    return out


def scored(rnd: Round) -> Round:
    """The round with each proposal's score replaced by its calibrated score (the policy's
    method); the round itself when the policy calibrates nothing."""
    if rnd.policy.reviews.calibration == "none":
        return rnd
    calibrated = calibrate(rnd)
    return rnd.model_copy(
        update={"proposals": [p.model_copy(update={"score": calibrated[p.id].score}) for p in rnd.proposals]}
    )


def _estimate(rnd: Round, method: str) -> Estimate:
    if method == "model":
        return _model(rnd)
    if method == "standardised":
        return _standardised(rnd)
    if method in ("mean", "none"):
        return _mean(rnd, keep_score=method == "none")
    raise ValueError(f"unknown calibration method {method!r}")


def _on_scale(x: float, lo: float, hi: float) -> float:
    return round(float(min(max(x, lo), hi)), DECIMALS)


def _values(rnd: Round) -> dict[str, list[tuple[str, str | None, float]]]:
    """Each proposal's reviews as (reviewer, panel, value) triples."""
    return {
        p.id: [(r.reviewer, r.panel, review_value(rnd, r)) for r in p.reviews or []] for p in rnd.proposals
    }


def _pooled_sd(groups: list[list[float]]) -> float:
    """The within-proposal standard deviation pooled over proposals with two or more values."""
    num = sum(float(np.sum((np.array(g) - np.mean(g)) ** 2)) for g in groups if len(g) > 1)
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    return float(np.sqrt(num / dof)) if dof > 0 else 0.0


def _mean(rnd: Round, keep_score: bool) -> Estimate:
    values = _values(rnd)
    within = _pooled_sd([[v for _, _, v in rs] for rs in values.values()])
    score, sd = {}, {}
    for p in rnd.proposals:
        rs = [v for _, _, v in values[p.id]]
        score[p.id] = p.score if keep_score or not rs else float(np.mean(rs))
        sd[p.id] = within / np.sqrt(len(rs)) if rs else 0.0
    return Estimate(score, sd)


def _standardised(rnd: Round) -> Estimate:
    values = _values(rnd)
    everything = np.array([v for rs in values.values() for _, _, v in rs])
    m, s = float(everything.mean()), float(everything.std())
    if s == 0:
        return _mean(rnd, keep_score=False)
    k = rnd.policy.reviews.shrinkage
    by_reviewer: dict[str, list[float]] = {}
    for rs in values.values():
        for reviewer, _, v in rs:
            by_reviewer.setdefault(reviewer, []).append(v)
    centre, spread = {}, {}
    for reviewer, vs in by_reviewer.items():
        n = len(vs)
        centre[reviewer] = (n * float(np.mean(vs)) + k * m) / (n + k)
        var = (n * float(np.var(vs)) + k * s * s) / (n + k)
        spread[reviewer] = float(np.sqrt(var)) if var > 0 else s
    zs = {pid: [(v - centre[r]) / spread[r] for r, _, v in rs] for pid, rs in values.items()}
    within = _pooled_sd(list(zs.values())) or 1.0
    score, sd = {}, {}
    for p in rnd.proposals:
        z = zs[p.id]
        score[p.id] = m + s * float(np.mean(z)) if z else p.score
        sd[p.id] = s * within / np.sqrt(len(z)) if z else 0.0
    return Estimate(score, sd)


def _model(rnd: Round) -> Estimate:
    """review = mu + q[proposal] + b[reviewer] + c[panel] + e, with q ~ N(0, tau2),
    b ~ N(0, beta2), c ~ N(0, pi2), e ~ N(0, sigma2); mu flat. Variances by maximum likelihood
    (the marginal likelihood in Henderson's form, which needs only matrices of the size of
    the number of effects); quality = mu + q from the posterior given those variances."""
    values = _values(rnd)
    reviewed = sorted(pid for pid, rs in values.items() if rs)
    reviewers = sorted({r for rs in values.values() for r, _, _ in rs})
    panels = sorted({pn for rs in values.values() for _, pn, _ in rs if pn is not None})
    use_panels = len(panels) > 1
    col_q = {pid: 1 + i for i, pid in enumerate(reviewed)}
    col_b = {r: 1 + len(reviewed) + i for i, r in enumerate(reviewers)}
    col_c = {pn: 1 + len(reviewed) + len(reviewers) + i for i, pn in enumerate(panels)} if use_panels else {}
    width = 1 + len(reviewed) + len(reviewers) + len(col_c)
    rows: list[list[int]] = []
    y_list: list[float] = []
    for pid in reviewed:
        for reviewer, panel, v in values[pid]:
            cols = [0, col_q[pid], col_b[reviewer]]
            if use_panels and panel is not None:
                cols.append(col_c[panel])
            rows.append(cols)
            y_list.append(v)
    y = np.array(y_list)
    z = coo_matrix(
        (
            np.ones(sum(len(c) for c in rows)),
            (np.repeat(np.arange(len(rows)), [len(c) for c in rows]), np.concatenate(rows)),
        ),
        shape=(len(y), width),
    ).tocsr()
    ztz, zty, yty = (z.T @ z).toarray(), z.T @ y, float(y @ y)
    n = len(y)
    scale = float(np.var(y)) or 1.0
    kinds = [0] + [1] * len(reviewed) + [2] * len(reviewers) + [3] * len(col_c)
    kind = np.array(kinds)

    def precision(log_var: np.ndarray) -> np.ndarray:
        variances = np.concatenate([[1e8 * scale], np.exp(log_var[:3]) * scale])
        return 1.0 / variances[kind]

    def neg_loglik(log_var: np.ndarray) -> float:
        sigma2 = float(np.exp(log_var[3]) * scale)
        prior = precision(log_var)
        c = ztz / sigma2 + np.diag(prior)
        try:
            factor = cho_factor(c)
        except np.linalg.LinAlgError:
            return 1e30
        r = zty / sigma2
        logdet_c = 2.0 * float(np.sum(np.log(np.diag(factor[0]))))
        logdet_d = -float(np.sum(np.log(prior[1:])))
        quad = yty / sigma2 - float(r @ cho_solve(factor, r))
        return 0.5 * (n * np.log(sigma2) + logdet_d + logdet_c + quad)

    start = np.log(np.array([0.5, 0.25, 0.1, 0.25]))
    bounds = [(-12.0, 4.0)] * 4
    if not use_panels:
        bounds[2] = (start[2], start[2])  # no panel effect to fit
    fit = minimize(neg_loglik, start, method="L-BFGS-B", bounds=bounds)
    log_var = fit.x
    sigma2 = float(np.exp(log_var[3]) * scale)
    c = ztz / sigma2 + np.diag(precision(log_var))
    factor = cho_factor(c)
    post_mean = cho_solve(factor, zty / sigma2)
    post_cov = cho_solve(factor, np.eye(width))
    score, sd = {}, {}
    for p in rnd.proposals:
        if p.id in col_q:
            j = col_q[p.id]
            score[p.id] = float(post_mean[0] + post_mean[j])
            var = post_cov[0, 0] + post_cov[j, j] + 2 * post_cov[0, j]
            sd[p.id] = float(np.sqrt(max(var, 0.0)))
        else:
            score[p.id], sd[p.id] = p.score, 0.0
    return Estimate(score, sd)


def _rank_draws(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Ranks (1 = best) of RANK_DRAWS independent normal draws around each score."""
    rng = np.random.default_rng(RANK_SEED)
    count = RANK_DRAWS if len(mean) <= 2000 else 400
    draws = mean[None, :] + sd[None, :] * rng.standard_normal((count, len(mean)))
    # Ties (proposals without uncertainty) are broken by position, i.e. by id.
    order = np.argsort(-draws, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(count)[:, None]
    ranks[rows, order] = np.arange(1, len(mean) + 1)[None, :]
    return ranks
