"""Password hashing, password policy and token handling (OWASP ASVS V2/V3)."""
