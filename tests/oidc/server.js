// A real OpenID provider for the portal's SSO tests: panva's oidc-provider with its development
// login screen. Started by tests/oidc/provider.py (pytest), on a loopback port the OS chooses.
//
// Configured by one JSON document in the environment (OIDC_TEST_CONFIG):
//   {"clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//    "accounts": {"<sub>": {"email", "email_verified", "name", "preferred_username", "groups"}},
//    "accounts_file": "<path>" (optional: the accounts read from this JSON file at each login,
//                     so a test can change someone's groups between two sign-ins),
//    "code_ttl": <seconds an authorization code lives; 60 when absent>}
// On the login screen any password is accepted; the login is the account's `sub`.
// When ready it prints "LISTENING <issuer>" on stdout.
import fs from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG || '{}');
const accountsNow = () => (config.accounts_file
  ? JSON.parse(fs.readFileSync(config.accounts_file, 'utf8')) : config.accounts || {});

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: (config.clients || []).map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      redirect_uris: c.redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: c.token_endpoint_auth_method || 'client_secret_basic',
    })),
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    pkce: { required: () => true },
    cookies: { keys: ['portal-tests-only-cookie-key'] },
    features: { devInteractions: { enabled: true } },
    ttl: { AuthorizationCode: Number(config.code_ttl || 60) },
    async findAccount(ctx, sub) {
      const account = accountsNow()[sub];
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() { return { sub, ...account }; },
      };
    },
  });
  // Loopback redirect URIs match on any port (RFC 8252, section 7.3): the portal under test
  // listens on a port the OS chose, so a client registered for http://127.0.0.1/... works.
  const { redirectUriAllowed } = provider.Client.prototype;
  provider.Client.prototype.redirectUriAllowed = function allowed(value) {
    if (redirectUriAllowed.call(this, value)) return true;
    let wanted;
    try { wanted = new URL(value); } catch { return false; }
    if (wanted.protocol !== 'http:' || wanted.hostname !== '127.0.0.1') return false;
    return this.redirectUris.some((uri) => {
      const registered = new URL(uri);
      return registered.hostname === '127.0.0.1' && registered.pathname === wanted.pathname
        && registered.search === wanted.search;
    });
  };
  server.on('request', provider.callback());
  process.stdout.write(`LISTENING ${issuer}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
