"""The ranking model: gradient-boosted trees score each candidate, a conditional logit over a
message's candidates and "none of them" turns the scores into probabilities.

1. Trees (LightGBM LambdaRank) score each candidate from its features and the message's: the
   interactions matter ("the current procedure, unless the message names words another one
   explains").
2. Candidate i gets the logit w·s_i (its tree score, standardised), "none" gets v·g (features of
   the message alone); the probability of each is the softmax over them all. w and v maximise
   the probability mass on the acceptable codes of each example (or on "none" for a message no
   procedure answers) over out-of-fold tree scores, by L-BFGS with an L2 penalty.
3. A temperature fitted on out-of-fold predictions of the real questions and conversations
   carries that calibration to what citizens really write; the confidence the dialogue acts on
   (the best candidate with its same-named variants at other levels) gets its own logistic
   calibration on the same predictions (`confidence`).
Everything is seeded and single-threaded: the same inputs give the same model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm
import numpy as np
from scipy.optimize import minimize

from procedures_db.model_files import write_json
from procedures_db.resolver.examples import ExampleIndex, LabelledText
from procedures_db.resolver.records import RecordIndex

FORMAT = "tthc-resolver/4"  # 4: remembered rows carry the conversation turn
TREE_PARAMS = {
    "objective": "lambdarank",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 42,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbosity": -1,
}
TREE_ROUNDS = 300


@dataclass
class Group:
    """One training example: candidate rows, the "none" row, which are right, its weight."""

    x: np.ndarray  # (n_candidates, F)
    g: np.ndarray  # (G,)
    positive: np.ndarray  # bool (n_candidates,)
    none_positive: bool
    weight: float = 1.0
    family: np.ndarray | None = None  # per candidate, an id shared by same-named variants


def tree_rows(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """What the trees read of each candidate: its features and the message's."""
    return np.hstack([x, np.repeat(g[None, :], len(x), axis=0)])


@dataclass
class RankingModel:
    candidate_features: tuple[str, ...]
    none_features: tuple[str, ...]
    w: np.ndarray
    v: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    temperature: float = 1.0
    # confidence = sigmoid(w · confidence_inputs(q, g, p_none)) for the best candidate's group
    # probability q (see fit_confidence_map)
    confidence_map: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    thresholds: dict[str, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    trees: lightgbm.Booster | None = None
    # The remembered questions (resolver.examples): analysed terms and acceptable codes.
    examples: tuple[LabelledText, ...] = ()
    _example_indexes: dict = field(default_factory=dict, repr=False, compare=False)

    def example_index(self, records: RecordIndex) -> ExampleIndex:
        """The remembered questions over one database's records (built once per records)."""
        key = id(records)
        cached = self._example_indexes.get(key)
        if cached is None or cached[0] is not records:
            cached = (records, ExampleIndex(self.examples, records))
            self._example_indexes[key] = cached
        return cached[1]

    def tree_scores(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros((0, 1))
        # One thread: a few dozen rows; OpenMP's start-up would cost more than the trees.
        return self.trees.predict(tree_rows(x, g), num_threads=1).reshape(-1, 1)

    def logits_from_scores(self, s: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, float]:
        z = ((s - self.mean) / self.scale) @ self.w if len(s) else np.zeros(0)
        return z / self.temperature, float(g @ self.v) / self.temperature

    def confidence(self, group_probability: float, g: np.ndarray, none_probability: float) -> float:
        """How likely the best candidate (or a same-named variant) is right, calibrated."""
        inputs = confidence_inputs(group_probability, g, none_probability, self.none_features)
        z = inputs @ np.asarray(self.confidence_map)
        return float(1.0 / (1.0 + np.exp(-z)))

    def probabilities(self, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, float]:
        """Per candidate, and for "none"; they sum to one."""
        return self.probabilities_from_scores(self.tree_scores(x, g), g)

    def probabilities_from_scores(self, s: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, float]:
        z, z_none = self.logits_from_scores(s, g)
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
            "confidence_map": list(self.confidence_map),
            "thresholds": self.thresholds,
            "meta": self.meta,
            "trees": self.trees.model_to_string() if self.trees else None,
            "examples": [
                [list(e.terms), list(e.codes), e.key, e.current, e.follow_up, list(e.words)]
                for e in self.examples
            ],
        }
        write_json(path, data, indent=1)

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
            confidence_map=tuple(data["confidence_map"]),
            thresholds={k: float(t) for k, t in data["thresholds"].items()},
            meta=data.get("meta", {}),
            trees=lightgbm.Booster(model_str=data["trees"]),
            examples=tuple(
                LabelledText(tuple(row[0]), tuple(row[1]), row[2], *row[3:5], tuple(row[5]))
                for row in data.get("examples", [])
            ),
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


def fit_trees(groups: list[Group]) -> lightgbm.Booster:
    """LambdaRank trees over the groups that have an acceptable candidate."""
    ranked = [gr for gr in groups if gr.positive.any()]
    data = lightgbm.Dataset(
        np.vstack([tree_rows(gr.x, gr.g) for gr in ranked]),
        label=np.concatenate([gr.positive.astype(int) for gr in ranked]),
        weight=np.concatenate([np.full(len(gr.x), gr.weight) for gr in ranked]),
        group=[len(gr.x) for gr in ranked],
    )
    return lightgbm.train(TREE_PARAMS, data, num_boost_round=TREE_ROUNDS)


def scored(groups: list[Group], trees: lightgbm.Booster) -> list[Group]:
    """The groups with each candidate's tree score as its only feature."""
    return [
        Group(
            x=trees.predict(tree_rows(gr.x, gr.g)).reshape(-1, 1),
            g=gr.g,
            positive=gr.positive,
            none_positive=gr.none_positive,
            weight=gr.weight,
            family=gr.family,
        )
        for gr in groups
    ]


def fit(
    groups: list[Group],
    candidate_features: tuple[str, ...],
    none_features: tuple[str, ...],
    l2: float = 1.0,
) -> RankingModel:
    """Maximum-likelihood logit weights (L2-penalised) over the groups' features, standardised
    on the training rows (for the resolver: the out-of-fold tree scores)."""
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
    """The temperature that maximises the likelihood of `groups` (held-out tree scores)."""
    best, best_loss = 1.0, np.inf
    for temperature in np.exp(np.linspace(np.log(0.3), np.log(3.0), 61)):
        model.temperature = float(temperature)
        loss = 0.0
        for gr in groups:
            p, p_none = model.probabilities_from_scores(gr.x, gr.g)
            good = float(p[gr.positive].sum()) + (p_none if gr.none_positive else 0.0)
            loss -= np.log(max(good, 1e-12))
        if loss < best_loss:
            best, best_loss = float(temperature), loss
    model.temperature = 1.0
    return best


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def confidence_inputs(
    group_probability: float, g: np.ndarray, none_probability: float, none_features: tuple[str, ...]
) -> np.ndarray:
    """What the confidence reads besides the best group's probability: the message's length and
    whether a conversation is under way (a long story is less sure than a short query at the
    same probability, a follow-up more), the probability of none, and how well the message's
    focus matches some procedure name."""
    return np.array(
        [
            _logit(group_probability),
            1.0,
            float(g[none_features.index("words_full")]),
            float(g[none_features.index("has_current")]),
            _logit(none_probability),
            float(g[none_features.index("max_name_focus")]),
        ]
    )


def fit_confidence_map(inputs: np.ndarray, right: np.ndarray, l2: float = 1.0) -> tuple[float, ...]:
    """Logistic calibration (weights on `confidence_inputs`) fitted on held-out predictions."""

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-(inputs @ theta)))
        eps = 1e-12
        value = -np.sum(right * np.log(p + eps) + (1 - right) * np.log(1 - p + eps))
        value += 0.5 * l2 * float(theta[2:] @ theta[2:])
        grad = inputs.T @ (p - right)
        grad[2:] += l2 * theta[2:]
        return value, grad

    start = np.zeros(inputs.shape[1])
    start[0] = 1.0
    result = minimize(loss, start, jac=True, method="L-BFGS-B")
    return tuple(float(t) for t in result.x)
