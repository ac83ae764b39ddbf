"""Role and scope guards used by every view and API endpoint.

Pattern (STYLE: load, then authorize, then act): a view loads its object with
``get_or_404``, then calls ``authorize(predicate)`` or is decorated with ``require_role``.
Both raise ``Forbidden``, rendered as a 403 page or a 403 JSON body.
"""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable, TypeVar

from flask_babel import gettext as _
from flask_login import current_user

from labbook.auth.models import Role
from labbook.errors import Forbidden, NotFound
from labbook.extensions import db

F = TypeVar("F", bound=Callable[..., Any])
MAX_ID = 2**31 - 1
M = TypeVar("M")


def require_role(*roles: Role | str) -> Callable[[F], F]:
    """Allow the view only to users holding one of ``roles`` (admins always pass)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                from labbook.errors import Unauthorized

                raise Unauthorized(_("Authentication required."))
            if not (current_user.is_admin or current_user.has_role(*roles)):
                raise Forbidden(_("You do not have permission to do this."))
            return view(*args, **kwargs)

        wrapped._labbook_roles = tuple(  # type: ignore[attr-defined]
            r.value if isinstance(r, Role) else r for r in roles
        )
        return wrapped  # type: ignore[return-value]

    return decorator


def authorize(allowed: bool, message: str | None = None) -> None:
    """Raise ``Forbidden`` unless ``allowed``.

    :raises Forbidden: when the current user may not do this.
    """
    if not allowed:
        raise Forbidden(message or _("You do not have permission to do this."))


def get_or_404(
    model: type[M], ident: Any, message: str | None = None, options: tuple = ()
) -> M:
    """Load a row by primary key (``options``: loader options, e.g. joinedload).

    :raises NotFound: when no such row exists.
    """
    if ident is None or (isinstance(ident, int) and not 0 < ident <= MAX_ID):
        raise NotFound(message or _("Not found."))  # beyond the integer column: cannot exist
    obj = db.session.get(model, ident, options=options)
    if obj is None:
        raise NotFound(message or _("Not found."))
    return obj
