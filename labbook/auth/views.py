"""Login, logout, profile (language, password, API tokens) and the language switch.

CSRFProtect checks every POST before these views run, so a POST without a valid token never
reaches them.
"""

from __future__ import annotations

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from labbook.auth import bp, services
from labbook.auth.forms import (
    EmptyForm,
    LanguageForm,
    LoginForm,
    PasswordForm,
    ProfileForm,
    TokenForm,
)
from labbook.auth.security import public
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.i18n import LANG_COOKIE
from labbook.urls import safe_next


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    status = 200
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.email.data, form.password.data, request.remote_addr)
        except (ValidationError, services.LoginThrottled) as error:
            form.form_errors.append(error.message)
            status = error.status
        else:
            db.session.commit()
            login_user(user, remember=form.remember.data)
            return redirect(safe_next(form.next.data, url_for("instruments.index")))
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    flash(_("You have been logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/profile", methods=["GET", "POST"])
def profile():
    form = ProfileForm(obj=current_user)
    if form.validate_on_submit():
        try:
            services.update_profile(current_user, form.name.data, form.locale.data)
        except ValidationError as error:
            form.apply_errors(error.fields)
        else:
            db.session.commit()
            flash(_("Profile saved."), "success")
            return redirect(url_for("auth.profile"))
    return _render_profile(profile_form=form)


@bp.route("/profile/password", methods=["POST"])
def change_password():
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            services.change_password(
                current_user, form.current_password.data, form.new_password.data
            )
        except ValidationError as error:
            form.apply_errors(error.fields)
        else:
            db.session.commit()
            flash(_("Password changed."), "success")
            return redirect(url_for("auth.profile"))
    return _render_profile(password_form=form)


@bp.route("/profile/tokens", methods=["POST"])
def create_token():
    form = TokenForm()
    if form.validate_on_submit():
        try:
            token, secret = services.create_token(current_user, form.name.data)
        except ValidationError as error:
            form.apply_errors(error.fields)
        else:
            db.session.commit()
            return _render_profile(new_secret=secret, status=201)
    return _render_profile(token_form=form)


@bp.route("/profile/tokens/<int:token_id>/revoke", methods=["POST"])
def revoke_token(token_id: int):
    services.revoke_token(current_user, token_id)
    db.session.commit()
    flash(_("Token revoked."), "success")
    return redirect(url_for("auth.profile"))


def _render_profile(status: int | None = None, new_secret: str | None = None, **forms):
    forms.setdefault("profile_form", ProfileForm(obj=current_user))
    forms.setdefault("password_form", PasswordForm())
    forms.setdefault("token_form", TokenForm())
    failed = any(f.errors for f in forms.values())
    code = status or (422 if failed and request.method == "POST" else 200)
    tokens = [t for t in current_user.tokens if t.revoked_at is None]
    return (
        render_template(
            "auth/profile.html",
            tokens=tokens,
            new_secret=new_secret,
            action_form=EmptyForm(),
            **forms,
        ),
        code,
    )


@bp.route("/language", methods=["POST"])
@public
def set_language():
    form = LanguageForm()
    target = safe_next(form.next.data, url_for("instruments.index"))
    if not form.validate_on_submit():
        return redirect(target)
    if current_user.is_authenticated:
        services.update_profile(current_user, current_user.name, form.lang.data)
        db.session.commit()
    response = make_response(redirect(target))
    response.set_cookie(
        LANG_COOKIE, form.lang.data, max_age=365 * 86400, samesite="Lax", httponly=True
    )
    return response
