// A real OpenID provider for the portal's SSO tests: panva's oidc-provider with its development
// login screen. Started by tests/oidc/provider.py (pytest), on a loopback port the OS chooses.
//
// Configured by one JSON document in the environment (OIDC_TEST_CONFIG):
//   {"clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//    "accounts": {"<sub>": {"email", "email_verified", "name", "preferred_username", "groups"}}}
// On the login screen any password is accepted; the login is the account's `sub`.
// When ready it prints "LISTENING <issuer>" on stdout.
import http from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG || '{}');
const accounts = config.accounts || {};

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
      const account = accounts[sub];
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() { return { sub, ...account }; },
      };
    },
  });
  provider.proxy = false;
  server.on('request', provider.callback());
  process.stdout.write(`LISTENING ${issuer}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
