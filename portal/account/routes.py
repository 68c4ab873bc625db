from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..auth.forms import LogoutForm

bp = Blueprint("account", __name__)


@bp.route("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    if current_user.is_superuser:
        return redirect(url_for("admin.dashboard"))
    return redirect(url_for("account.index"))


@bp.route("/account/")
@login_required
def index():
    return render_template("account/index.html", logout_form=LogoutForm())
