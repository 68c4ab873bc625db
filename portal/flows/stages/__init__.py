"""Registry of stage types: adding a type means adding a module and one `register` line here."""

from __future__ import annotations

from .authenticator_totp import AuthenticatorTOTPStage
from .authenticator_validate import AuthenticatorValidateStage
from .base import ActionRequest, ActionResult, Deny, Next, Result, Retry, StageAction, StageType
from .consent import ConsentStage
from .deny import DenyStage
from .email import EmailStage
from .identification import IdentificationStage
from .invitation import InvitationStage
from .options import Option
from .password import PasswordStage
from .prompt import PromptStage
from .registry import STAGE_TYPES, by_model, register, stage_type_for, unregister
from .source import SourceStage
from .user_delete import UserDeleteStage
from .user_login import UserLoginStage
from .user_write import UserWriteStage

register(InvitationStage)
register(PromptStage)
register(UserWriteStage)
register(UserLoginStage)
register(EmailStage)
register(ConsentStage)
register(DenyStage)
register(IdentificationStage)
register(PasswordStage)
register(AuthenticatorTOTPStage)
register(AuthenticatorValidateStage)
register(UserDeleteStage)
register(SourceStage)

__all__ = ["STAGE_TYPES", "ActionRequest", "ActionResult", "Deny", "Next", "Option", "Result",
           "Retry", "StageAction", "StageType", "by_model", "register", "stage_type_for",
           "unregister"]
