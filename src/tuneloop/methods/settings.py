"""The settings every method section shares; each method declares its own on top of these.

A run's ``method:`` section is one of the methods' settings models, chosen by its ``name``
(:data:`tuneloop.config.MethodConfig`); a setting another method owns is refused, not ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MethodSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str


class TargetedSettings(MethodSettings):
    target_modules: list[str] | str = Field("all-linear", description="Modules to adapt: names or 'all-linear'.")


class ContinuableSettings(TargetedSettings):
    """peft adapters on a frozen base, which a later run can train further."""

    init_from: str | None = Field(
        None, description="Start from the adapter of this finished run (continue training it) instead of a fresh one."
    )
