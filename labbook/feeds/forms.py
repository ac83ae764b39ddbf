"""Forms of the feed pages: the hidden inputs of the "get a link", "replace" and "revoke"
buttons (CSRF comes with BaseForm). Which scopes and targets are allowed is the service's
question."""
from __future__ import annotations

from wtforms import HiddenField, IntegerField
from wtforms.validators import Optional
from wtforms.widgets import HiddenInput

from labbook.forms import BaseForm


class FeedForm(BaseForm):
    scope = HiddenField()
    target_id = IntegerField(validators=[Optional()], widget=HiddenInput())
    next = HiddenField()


class FeedActionForm(BaseForm):
    next = HiddenField()
