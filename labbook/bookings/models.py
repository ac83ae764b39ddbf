"""Booking models: added by the booking-engine issue (bookings, outages, qualifications)."""
