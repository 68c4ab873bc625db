"""Federated sign-in through OpenID Connect sources (issue 12).

- `oidc`: the protocol, with Authlib: discovery (cached), the authorization request (code + PKCE
  S256, state, nonce), the token exchange and the ID token's checks, userinfo.
- `service`: sources (admin), linked identities, and what one completed round trip does
  (sign in, enroll, link, accept an invitation); no HTTP in it.
- `routes`: the start, callback and confirm-link pages (the `sources` blueprint).
"""
