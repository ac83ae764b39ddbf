"""Calendar feeds: secret-token iCalendar subscriptions, single-booking .ics files and
closure import (SPEC section 7)."""
