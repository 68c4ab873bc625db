"""The invitee's wizard at /if/flow/<slug>/ (authentik's link format)."""
