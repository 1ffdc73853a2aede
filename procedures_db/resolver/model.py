"""The ranking model: a conditional logit over a message's candidates and "none of them".

Each candidate i gets a logit w·x_i, "none" gets v·g (features of the message alone); the
probability of each is the softmax over them all. Training maximises the probability mass on
the acceptable codes of each example (or on "none" for a message no procedure answers), with an
L2 penalty, by L-BFGS: deterministic, seconds on a few thousand examples, and probabilities that
are calibrated by construction on the training distribution. A temperature fitted on out-of-fold
predictions of the real questions carries that calibration to what citizens really write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

FORMAT = "tthc-resolver/1"


@dataclass
class Group:
    """One training example: candidate rows, the "none" row, which are right, its weight."""

    x: np.ndarray  # (n_candidates, F)
    g: np.ndarray  # (G,)
    positive: np.ndarray  # bool (n_candidates,)
    none_positive: bool
    weight: float = 1.0
    family: np.ndarray | None = None  # per candidate, an id shared by same-named variants


@dataclass
class RankingModel:
    candidate_features: tuple[str, ...]
    none_features: tuple[str, ...]
    w: np.ndarray
    v: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    temperature: float = 1.0
    thresholds: dict[str, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def logits(self, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, float]:
        z = ((x - self.mean) / self.scale) @ self.w if len(x) else np.zeros(0)
        return z / self.temperature, float(g @ self.v) / self.temperature

    def probabilities(self, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, float]:
        """Per candidate, and for "none"; they sum to one."""
        z, z_none = self.logits(x, g)
        top = max(z.max(initial=-np.inf), z_none)
        e = np.exp(z - top)
        e_none = float(np.exp(z_none - top))
        total = e.sum() + e_none
        return e / total, e_none / total

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            "candidate_features": list(self.candidate_features),
            "none_features": list(self.none_features),
            "w": self.w.tolist(),
            "v": self.v.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "temperature": self.temperature,
            "thresholds": self.thresholds,
            "meta": self.meta,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> RankingModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a resolver model (format {data.get('format')!r})")
        return cls(
            candidate_features=tuple(data["candidate_features"]),
            none_features=tuple(data["none_features"]),
            w=np.array(data["w"]),
            v=np.array(data["v"]),
            mean=np.array(data["mean"]),
            scale=np.array(data["scale"]),
            temperature=float(data["temperature"]),
            thresholds={k: float(t) for k, t in data["thresholds"].items()},
            meta=data.get("meta", {}),
        )


def _pack(groups: list[Group]):
    x = np.vstack([gr.x for gr in groups])
    g = np.vstack([gr.g for gr in groups])
    sizes = np.array([len(gr.x) for gr in groups])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    positive = np.concatenate([gr.positive for gr in groups]).astype(float)
    none_positive = np.array([gr.none_positive for gr in groups], dtype=float)
    weights = np.array([gr.weight for gr in groups])
    return x, g, offsets, positive, none_positive, weights


def fit(
    groups: list[Group],
    candidate_features: tuple[str, ...],
    none_features: tuple[str, ...],
    l2: float = 1.0,
) -> RankingModel:
    """Maximum-likelihood weights (L2-penalised); features standardised on the training rows."""
    x, g, offsets, positive, none_positive, weights = _pack(groups)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    xs = (x - mean) / scale
    n_groups = len(groups)
    segment = np.repeat(np.arange(n_groups), np.diff(offsets))
    f_dim = x.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, v = theta[:f_dim], theta[f_dim:]
        z = xs @ w
        z_none = g @ v
        top = np.maximum(np.maximum.reduceat(z, offsets[:-1]) if len(z) else z_none, z_none)
        e = np.exp(z - top[segment])
        e_none = np.exp(z_none - top)
        total = np.add.reduceat(e, offsets[:-1]) + e_none
        good = np.add.reduceat(e * positive, offsets[:-1]) + e_none * none_positive
        loss = -np.sum(weights * (np.log(good) - np.log(total)))
        # d loss / d z_i = weight * (p_i - q_i), q = posterior over the acceptable ones
        p = e / total[segment]
        q = e * positive / good[segment]
        dz = weights[segment] * (p - q)
        dz_none = weights * (e_none / total - e_none * none_positive / good)
        grad_w = xs.T @ dz + l2 * w
        grad_v = g.T @ dz_none + l2 * v
        loss += 0.5 * l2 * (w @ w + v @ v)
        return loss, np.concatenate([grad_w, grad_v])

    theta0 = np.zeros(f_dim + g.shape[1])
    result = minimize(objective, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return RankingModel(
        candidate_features=candidate_features,
        none_features=none_features,
        w=result.x[:f_dim],
        v=result.x[f_dim:],
        mean=mean,
        scale=scale,
        meta={"converged": bool(result.success), "iterations": int(result.nit)},
    )


def fit_temperature(model: RankingModel, groups: list[Group]) -> float:
    """The temperature that maximises the likelihood of `groups` (held-out predictions)."""
    best, best_loss = 1.0, np.inf
    for temperature in np.exp(np.linspace(np.log(0.3), np.log(3.0), 61)):
        model.temperature = float(temperature)
        loss = 0.0
        for gr in groups:
            p, p_none = model.probabilities(gr.x, gr.g)
            good = float(p[gr.positive].sum()) + (p_none if gr.none_positive else 0.0)
            loss -= np.log(max(good, 1e-12))
        if loss < best_loss:
            best, best_loss = float(temperature), loss
    model.temperature = 1.0
    return best
