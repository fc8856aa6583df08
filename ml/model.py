"""A trained ALS model as plain numpy arrays: what the registry stores and the service serves.

Spark-free: the service loads it without a JVM. Row ``i`` of ``user_factors`` belongs to
``user_ids[i]`` (likewise for items): the contiguous integer ids ALS trained on are
positions in these lists. ``seen`` holds the training interactions (the preference ALS
trained on per (user, item): ``AlsParams.scale``d, negative for a turned-down pair taught
as preference 0, 0 for one only kept out), so serving leaves out what a user already
played or turned down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from ml import scoring

SCALINGS = ("linear", "log")


@dataclass(frozen=True)
class AlsParams:
    """MLlib ALS hyper-parameters (``regParam`` is scaled by each user's and item's
    interaction count in MLlib, so values from other libraries do not carry over), and how
    interaction counts become the preference ALS weighs (searched like the others, kept
    with the model so serving turns new listens into preferences the same way):

    - ``scaling``: ``linear`` (the confidence formula's value) or ``log`` (``log1p`` of it:
      the hundredth play of a track says less than the second);
    - ``half_life_days``: plays and minutes weigh ``0.5 ** (age / half_life)``, age counted
      back from the last training play (0: no decay);
    - ``negatives``: turned-down pairs (skipped or disliked, not outweighed) are taught as
      preference 0 with a confidence of their weight (MLlib's negative ratings); otherwise
      they are only kept out of the lists.
    """

    rank: int = 10
    reg_param: float = 0.1
    alpha: float = 1.0
    max_iter: int = 10
    scaling: str = "linear"
    half_life_days: float = 0.0
    negatives: bool = False

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.half_life_days < 0:
            raise ValueError(f"half_life_days must be 0 (none) or more, got {self.half_life_days}")

    def scale(self, magnitude, log1p=np.log1p):
        """The preference of a positive ``magnitude`` (numbers, arrays, or Spark columns
        with ``log1p=pyspark.sql.functions.log1p``)."""
        return log1p(magnitude) if self.scaling == "log" else magnitude

    def unscale(self, preference: np.ndarray) -> np.ndarray:
        """The magnitude behind non-negative preferences (``scale``'s inverse)."""
        return np.expm1(preference) if self.scaling == "log" else preference

    def to_dict(self) -> dict[str, float | int | str | bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, float | int | str | bool]) -> AlsParams:
        # Models saved before the preference options trained with linear, undecayed
        # counts and no negatives: the defaults.
        return cls(
            rank=int(values["rank"]),
            reg_param=float(values["reg_param"]),
            alpha=float(values["alpha"]),
            max_iter=int(values["max_iter"]),
            scaling=str(values.get("scaling", "linear")),
            half_life_days=float(values.get("half_life_days", 0.0)),
            negatives=bool(values.get("negatives", False)),
        )


@dataclass(frozen=True)
class ConfidenceWeights:
    """The implicit-feedback confidence of a (user, track) from its interaction counts."""

    play: float = 1.0
    minute_played: float = 0.1
    recommended_and_played: float = 2.0
    like: float = 4.0
    skip: float = 1.0
    dislike: float = 4.0

    def of(
        self,
        play_count,
        ms_played,
        recommended_and_played=0,
        likes=0,
        skips=0,
        dislikes=0,
    ):
        """With the default weights::

            confidence = 1.0 * play_count
                       + 0.1 * minutes played (ms_played / 60000)
                       + 2.0 * recommended_and_played
                       + 4.0 * likes
                       - 1.0 * skips
                       - 4.0 * dislikes

        A pair at 0 or below carries no evidence of a taste (a skip cancels a play, a
        dislike a like) and is left out of training; ALS weighs a kept pair by
        ``1 + alpha * confidence``. Plain arithmetic, so the arguments may be numbers (the
        service, for listens since training) or Spark columns (the training set).
        """
        return (
            self.play * play_count
            + self.minute_played * ms_played / 60_000.0
            + self.recommended_and_played * recommended_and_played
            + self.like * likes
            - self.skip * skips
            - self.dislike * dislikes
        )


DEFAULT_WEIGHTS = ConfidenceWeights()


@dataclass(frozen=True, eq=False)
class Interactions:
    """A sparse users x items matrix in compressed rows: user ``u``'s items are
    ``indices[indptr[u]:indptr[u + 1]]`` with ``values`` alongside."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    @classmethod
    def from_pairs(
        cls, n_users: int, users: np.ndarray, items: np.ndarray, values: np.ndarray
    ) -> Interactions:
        users = np.asarray(users, dtype=np.int64)
        order = np.lexsort((np.asarray(items), users))
        counts = np.bincount(users, minlength=n_users)
        return cls(
            indptr=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
            indices=np.asarray(items, dtype=np.int64)[order],
            values=np.asarray(values, dtype=np.float64)[order],
        )

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def row(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.indptr[user], self.indptr[user + 1]
        return self.indices[start:end], self.values[start:end]


@dataclass(frozen=True, eq=False)
class AlsModel:
    params: AlsParams
    user_ids: Sequence[str]
    item_ids: Sequence[str]
    user_factors: np.ndarray  # len(user_ids) x rank
    item_factors: np.ndarray  # len(item_ids) x rank
    seen: Interactions  # the training interactions, rows by user index

    def __post_init__(self) -> None:
        rank = self.params.rank
        if self.user_factors.shape != (len(self.user_ids), rank):
            raise ValueError(
                f"user factors {self.user_factors.shape} do not match "
                f"{len(self.user_ids)} users x rank {rank}"
            )
        if self.item_factors.shape != (len(self.item_ids), rank):
            raise ValueError(
                f"item factors {self.item_factors.shape} do not match "
                f"{len(self.item_ids)} items x rank {rank}"
            )
        if self.seen.n_users != len(self.user_ids):
            raise ValueError(f"seen has {self.seen.n_users} rows for {len(self.user_ids)} users")

    @cached_property
    def user_index(self) -> dict[str, int]:
        return {user: i for i, user in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}

    @cached_property
    def yty(self) -> np.ndarray:
        return scoring.gramian(self.item_factors)

    def fold_in(self, preferences: Mapping[str, float]) -> np.ndarray:
        """The vector of a user with ``preferences`` (track -> raw preference, as the
        confidence formula gives, before this model's scaling); tracks the model does not
        know are ignored."""
        known = [(self.item_index[t], r) for t, r in preferences.items() if t in self.item_index]
        items = np.array([i for i, _ in known], dtype=np.int64)
        values = np.array([r for _, r in known], dtype=np.float64)
        return self._solve(items, self.params.scale(np.maximum(values, 0.0)))

    def refit(
        self, items: np.ndarray, values: np.ndarray, recent: Mapping[str, float]
    ) -> np.ndarray:
        """A known user's vector from their training preferences (``items``, ``values``:
        their ``seen`` row, scaled) plus ``recent`` (track -> raw preference, added to the
        magnitude behind a training track's own preference)."""
        merged = dict(zip(items.tolist(), values.tolist(), strict=True))
        for track, value in recent.items():
            index = self.item_index.get(track)
            if index is not None:
                before = self.params.unscale(np.float64(max(merged.get(index, 0.0), 0.0)))
                merged[index] = float(self.params.scale(before + max(value, 0.0)))
        return self._solve(
            np.fromiter(merged, dtype=np.int64, count=len(merged)),
            np.fromiter(merged.values(), dtype=np.float64, count=len(merged)),
        )

    def _solve(self, items: np.ndarray, preferences: np.ndarray) -> np.ndarray:
        return scoring.fold_in(
            self.item_factors,
            items,
            preferences,
            self.params.alpha,
            self.params.reg_param,
            self.yty,
        )

    def recommend(
        self, user_id: str, k: int, recent: Mapping[str, float] | None = None
    ) -> list[tuple[str, float]]:
        """Top ``k`` (track, score) for ``user_id``, leaving out the tracks they played in
        training and in ``recent`` (track -> raw preference, e.g. listens accepted since).
        A known user with ``recent`` is refit from both (``refit``); a user the model does
        not know is folded in from ``recent``; with no ``recent`` either, the list is empty
        (the caller falls back to most-popular)."""
        recent = dict(recent or {})
        recent_items = [self.item_index[t] for t in recent if t in self.item_index]
        if user_id in self.user_index:
            u = self.user_index[user_id]
            trained_items, trained_values = self.seen.row(u)
            # Listens since the model move the user's vector now, not at the next training:
            # the same solve as fold-in, over their training preferences plus the new ones.
            vector = (
                self.refit(trained_items, trained_values, recent)
                if recent_items
                else self.user_factors[u]
            )
            exclude = np.concatenate((trained_items, recent_items)).astype(np.int64)
        elif recent_items:
            vector = self.fold_in(recent)
            exclude = np.asarray(recent_items, dtype=np.int64)
        else:
            return []
        best, scores = scoring.recommend(vector, self.item_factors, k, exclude)
        return [(self.item_ids[i], float(s)) for i, s in zip(best, scores, strict=True)]
