"""A trained ALS model as plain numpy arrays: what the registry stores and the service serves.

Spark-free: the service loads it without a JVM. Row ``i`` of ``user_factors`` belongs to
``user_ids[i]`` (likewise for items): the contiguous integer ids ALS trained on are
positions in these lists. ``seen`` holds the training interactions (raw preference per
(user, item)), so serving can leave out what a user already played.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from ml import scoring


@dataclass(frozen=True)
class AlsParams:
    """MLlib ALS hyper-parameters (``regParam`` is scaled by each user's and item's
    interaction count in MLlib, so values from other libraries do not carry over)."""

    rank: int = 10
    reg_param: float = 0.1
    alpha: float = 1.0
    max_iter: int = 10

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, float | int]) -> AlsParams:
        return cls(
            rank=int(values["rank"]),
            reg_param=float(values["reg_param"]),
            alpha=float(values["alpha"]),
            max_iter=int(values["max_iter"]),
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
        training set's confidence formula gives); tracks the model does not know are
        ignored."""
        known = [(self.item_index[t], r) for t, r in preferences.items() if t in self.item_index]
        items = np.array([i for i, _ in known], dtype=np.int64)
        values = np.array([r for _, r in known], dtype=np.float64)
        return scoring.fold_in(
            self.item_factors, items, values, self.params.alpha, self.params.reg_param, self.yty
        )

    def refit(
        self, items: np.ndarray, values: np.ndarray, recent: Mapping[str, float]
    ) -> np.ndarray:
        """A known user's vector from their training preferences (``items``, ``values``:
        their ``seen`` row) plus ``recent`` (track -> raw preference, added to a training
        track's own)."""
        merged = dict(zip(items.tolist(), values.tolist(), strict=True))
        for track, value in recent.items():
            index = self.item_index.get(track)
            if index is not None:
                merged[index] = merged.get(index, 0.0) + value
        return scoring.fold_in(
            self.item_factors,
            np.fromiter(merged, dtype=np.int64, count=len(merged)),
            np.fromiter(merged.values(), dtype=np.float64, count=len(merged)),
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
