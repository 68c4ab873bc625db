"""Sign-in, sign-out and the first admin's setup link."""
