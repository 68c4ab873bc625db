"""Entry point: `flask --app wsgi ...` and `gunicorn wsgi:app`."""

from config import SettingError
from portal import create_app

try:
    app = create_app()
except SettingError as exc:  # one clear line for the operator instead of a traceback
    raise SystemExit(f"The portal cannot start: {exc}") from None
