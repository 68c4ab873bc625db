"""The question every editor page asks before deleting: what uses this, and what goes with it."""

from flask import flash, redirect, render_template

from ..flows import editor
from .forms import ConfirmForm


def confirm_delete(obj, *, what: str, name: str, used_by: list[str], consequence: str,
                   cancel: str, done: str):
    """GET shows what would be affected; the confirming POST (with CSRF) deletes."""
    form = ConfirmForm()
    if form.validate_on_submit():
        editor.delete(obj)
        flash(f"{what.capitalize()} “{name}” deleted.", "success")
        return redirect(done)
    return render_template("admin/confirm_delete.html", form=form, what=what, name=name,
                           used_by=used_by, consequence=consequence, cancel=cancel)
