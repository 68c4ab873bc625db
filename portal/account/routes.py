from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..auth.forms import LogoutForm
from ..auth.routes import home_for

bp = Blueprint("account", __name__)


@bp.route("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(home_for(current_user))


@bp.route("/account/")
@login_required
def index():
    return render_template("account/index.html", logout_form=LogoutForm())
