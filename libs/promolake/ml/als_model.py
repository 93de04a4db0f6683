"""The ALS model as an MLflow pyfunc: factors + the id index, answering top-k queries for user ids.

Input: a DataFrame with a `user_id` column (and optionally `k`); output: user_id, item_id, rank, score.
Users unknown to the model get no rows. The promotion engine reads the tables; this is for ad-hoc use,
validation and serving.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

try:
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover - mlflow is a training dependency
    PythonModel = object


class AlsRecommender(PythonModel):
    def load_context(self, context) -> None:
        data = np.load(context.artifacts["factors"], allow_pickle=False)
        self.user_ids, self.item_ids = data["user_ids"], data["item_ids"]
        self.U, self.V = data["user_factors"], data["item_factors"]
        self.row = {u: i for i, u in enumerate(self.user_ids.tolist())}
        self.k = int(data["k"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        out = []
        for _, r in model_input.iterrows():
            i = self.row.get(str(r["user_id"]))
            if i is None:
                continue
            k = int(r["k"]) if "k" in model_input.columns and pd.notna(r["k"]) else self.k
            scores = self.V @ self.U[i]
            top = np.argsort(-scores, kind="stable")[:k]
            out += [(str(r["user_id"]), str(self.item_ids[j]), n + 1, float(scores[j])) for n, j in enumerate(top)]
        return pd.DataFrame(out, columns=["user_id", "item_id", "rank", "score"])


def save_factors(path: str, user_ids, user_factors, item_ids, item_factors, k: int) -> None:
    np.savez_compressed(path, user_ids=np.asarray(user_ids, dtype=str), user_factors=user_factors,
                        item_ids=np.asarray(item_ids, dtype=str), item_factors=item_factors, k=np.int64(k))
