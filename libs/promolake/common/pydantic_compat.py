"""The configuration models on pydantic 2 and on pydantic 1.10, the one place that knows the difference.

Databricks Runtime 15.4 LTS ML ships pydantic 1.10.6; later runtimes (and the local environment) ship pydantic 2.
Requiring pydantic 2 would make pip replace the runtime's copy on every cluster, so promolake.common.config is
written against pydantic 2's API and this module supplies it on pydantic 1.10: `StrictModel` (extra keys
forbidden, frozen) with model_copy / model_dump / model_validate, `Field` (pattern= -> regex=),
`field_validator`, `model_validator(mode="after")`, and the shape of validation errors.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import pydantic

PYDANTIC_2 = int(str(pydantic.VERSION).split(".")[0]) >= 2
ValidationError = pydantic.ValidationError

if PYDANTIC_2:
    from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

    class StrictModel(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

else:
    from pydantic import BaseModel, Extra, root_validator, validator
    from pydantic import Field as _Field

    _UNDEFINED = pydantic.fields.Undefined

    def Field(default: Any = _UNDEFINED, *, pattern: str | None = None, **kwargs: Any) -> Any:  # noqa: N802
        """pydantic 2's Field: `pattern` is pydantic 1's `regex`."""
        if pattern is not None:
            kwargs["regex"] = pattern
        return _Field(default, **kwargs)

    def field_validator(*fields: str) -> Callable:
        return validator(*fields, allow_reuse=True)

    def model_validator(*, mode: str) -> Callable:
        """An "after" model validator (a method of the instance that raises or returns self) as pydantic 1's
        root validator over the validated values."""
        if mode != "after":
            raise ValueError(f"only model_validator(mode='after') is bridged, not {mode!r}")

        def wrap(method: Callable) -> Any:
            def check(cls, values: dict) -> dict:
                method(SimpleNamespace(**values))
                return values

            check.__name__ = method.__name__
            return root_validator(skip_on_failure=True, allow_reuse=True)(check)

        return wrap

    class StrictModel(BaseModel):  # type: ignore[no-redef]
        class Config:
            extra = Extra.forbid
            frozen = True

        def model_copy(self, *, update: dict | None = None, deep: bool = False):
            return self.copy(update=update, deep=deep)

        def model_dump(self, *, mode: str = "python", **kwargs: Any) -> dict:
            if mode == "json":
                import json

                return json.loads(self.json(**kwargs))
            return self.dict(**kwargs)

        @classmethod
        def model_validate(cls, obj: Any):
            return cls.parse_obj(obj)


def is_unknown_key(error: dict) -> bool:
    """Whether one entry of ValidationError.errors() is a key the model does not declare."""
    return error.get("type") in ("extra_forbidden", "value_error.extra")


__all__ = ["PYDANTIC_2", "BaseModel", "Field", "StrictModel", "ValidationError", "field_validator",
           "is_unknown_key", "model_validator"]
