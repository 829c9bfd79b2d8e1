"""What every request body shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A request body: unknown fields are refused (422 naming them), never ignored."""

    model_config = ConfigDict(extra="forbid")
