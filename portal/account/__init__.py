"""The signed-in user's own page."""
