"""Booking-engine models: slot holders (bookings and outages share one table so a single
database constraint keeps them apart), recurring series, qualifications and the waitlist."""

from labbook.bookings.models.qualifications import (  # noqa: F401
    Qualification,
    QualificationLevel,
    QualificationRequest,
)
from labbook.bookings.models.reservations import (  # noqa: F401
    ACTIVE_STATES,
    Booking,
    BookingSeries,
    BookingState,
    Outage,
    OutageKind,
    Reservation,
)
from labbook.bookings.models.waitlist import WaitlistEntry, WaitlistState  # noqa: F401
