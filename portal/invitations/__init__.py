"""Invitation service layer: create, link, check, redeem. It knows nothing of HTTP."""
