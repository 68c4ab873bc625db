"""Registry of stage types: adding a type means adding a module and listing it here."""

from __future__ import annotations

from .base import Deny, Next, Result, Retry, StageType
from .consent import ConsentStage
from .deny import DenyStage
from .email import EmailStage
from .invitation import InvitationStage
from .prompt import PromptStage
from .user_login import UserLoginStage
from .user_write import UserWriteStage

STAGE_TYPES: dict[str, type[StageType]] = {
    cls.type_name: cls for cls in (
        InvitationStage, PromptStage, UserWriteStage, UserLoginStage, EmailStage, ConsentStage,
        DenyStage,
    )
}


def stage_type_for(stage) -> StageType:
    try:
        return STAGE_TYPES[stage.type](stage)
    except KeyError:
        raise LookupError(f"unknown stage type {stage.type!r}") from None


__all__ = ["STAGE_TYPES", "Deny", "Next", "Result", "Retry", "StageType", "stage_type_for"]
