"""gunicorn settings for `make serve` (`gunicorn -c gunicorn.conf.py wsgi:app`).

Every value can be overridden from the environment; gunicorn's own GUNICORN_CMD_ARGS works too.
"""

import logging
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND") or "{}:{}".format(os.environ.get("HOST", "127.0.0.1"),
                                                        os.environ.get("PORT", "8000"))
# Password hashing (argon2id) is CPU-bound: about two workers per core is plenty.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))  # recycle workers; 0 = never
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # "-" = stdout; empty = off
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# The query string is left out of the access log: invitation and setup links carry tokens there.
access_log_format = '%(h)s - %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
proc_name = "invitation-portal"
# gunicorn's control socket sits at one path per user, so two servers on a box would collide:
# off unless GUNICORN_CONTROL_SOCKET names a path for this one.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or None
control_socket_disable = not control_socket
# X-Forwarded-* is handled by the app (TRUSTED_PROXIES → ProxyFix), not by gunicorn.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    """Before the workers start: warn about per-process rate limits, print the setup link."""
    from config import SettingError
    from portal import create_app

    try:
        app = create_app()
    except SettingError as exc:  # one clear line instead of a traceback, before any worker
        raise SystemExit(f"The portal cannot start: {exc}") from None
    per_process = app.config["RATELIMIT_STORAGE_URI"].startswith("memory")
    if app.config["RATELIMIT_ENABLED"] and per_process and server.cfg.workers > 1:
        server.log.warning(
            "Rate limits are counted per worker (RATELIMIT_STORAGE_URI=memory://); set it to a "
            "Redis URL so %d workers share one count.", server.cfg.workers,
        )
    with app.app_context():
        from portal.cli import print_setup_link
        from portal.extensions import db

        try:
            print_setup_link()  # at BASE_URL: the address people reach, not gunicorn's bind
        except Exception as exc:  # no tables yet: say what to do instead of failing to start
            logging.getLogger("gunicorn.error").warning(
                "Could not check for an admin (%s); run `flask --app wsgi db upgrade` first.",
                type(exc).__name__,
            )
        finally:
            db.session.remove()
            db.engine.dispose()  # workers fork after this: they must not share its connections
