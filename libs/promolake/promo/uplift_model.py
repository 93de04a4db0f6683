"""The uplift model as an MLflow pyfunc: input the promolake.promo.response_data.FEATURES columns,
output p_buy_without_offer, p_buy_with_offer, uplift and p_redeem per row. `unwrap()` gives the
UpliftModel itself (for reason codes: its feature contributions)."""
from __future__ import annotations

import pickle

import mlflow.pyfunc


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        with open(context.artifacts["model"], "rb") as f:
            self.model = pickle.load(f)

    def predict(self, context, model_input, params=None):
        return self.model.predict(model_input)


def load_uplift_model(uri: str):
    """(UpliftModel, model version info) behind a models:/ URI such as models:/promolake_uplift@challenger."""
    model = mlflow.pyfunc.load_model(uri)
    return model.unwrap_python_model().model
