/**
 * Dashboard sessions across two instances on one PostgreSQL: a cookie issued by one instance
 * is honoured by the other (CSRF token included), and signing out or revoking the session's
 * key on one instance ends the session on the other at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_KEY } from '../helpers/test-app.js';
import { api, send, sharedTierTestOptions, startInstancePair, type Answer, type Instance, type InstancePair } from '../helpers/instance-pair.js';

interface SignedIn {
  cookie: string;
  csrfToken: string;
  keyId: string;
}

describe('dashboard sessions across two instances (PostgreSQL + Redis)', await sharedTierTestOptions(), () => {
  let pair: InstancePair;
  before(async () => {
    pair = await startInstancePair();
  });
  after(() => (pair === undefined ? undefined : pair.close()));

  async function signIn(instance: Instance, key: string): Promise<SignedIn> {
    const answer = await send(`${instance.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key }),
    });
    assert.equal(answer.status, 201, answer.body);
    const setCookie = [answer.headers['set-cookie'] ?? []].flat().join('\n');
    const cookie = /shunt_session=([^;]*)/.exec(setCookie)?.[1];
    assert.ok(cookie !== undefined && cookie !== '', `no session cookie in ${setCookie}`);
    const session = JSON.parse(answer.body) as { csrfToken: string; keyId: string };
    return { cookie, csrfToken: session.csrfToken, keyId: session.keyId };
  }

  function withCookie(instance: Instance, session: SignedIn, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<Answer> {
    const headers: Record<string, string> = { cookie: `shunt_session=${session.cookie}` };
    if (method !== 'GET') headers['x-csrf-token'] = session.csrfToken;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return send(`${instance.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  }

  test('signed in on A, the cookie works on B; signed out on A, B refuses it', async () => {
    const session = await signIn(pair.a, ADMIN_KEY);
    assert.equal((await withCookie(pair.b, session, 'GET', '/api/v1/links')).status, 200);
    const read = await withCookie(pair.b, session, 'GET', '/api/v1/session');
    assert.equal(read.status, 200, read.body);
    assert.equal((JSON.parse(read.body) as { csrfToken: string }).csrfToken, session.csrfToken, 'B knows the CSRF token A issued');
    const made = await withCookie(pair.b, session, 'POST', '/api/v1/links', { url: 'https://example.com/session-on-b' });
    assert.equal(made.status, 201, made.body);

    const out = await withCookie(pair.a, session, 'DELETE', '/api/v1/session');
    assert.equal(out.status, 204, out.body);
    for (const instance of pair.both) {
      const refused = await withCookie(instance, session, 'GET', '/api/v1/links');
      assert.equal(refused.status, 401, `${instance.name}: ${refused.body}`);
    }
  });

  test("revoking the session's key on A ends the session on B", async () => {
    const created = await api(pair.a, 'POST', '/api/v1/keys', { name: 'shared session member', role: 'member' });
    assert.equal(created.status, 201, created.body);
    const memberKey = (created.json() as { key: string }).key;
    const session = await signIn(pair.a, memberKey);
    assert.equal((await withCookie(pair.b, session, 'GET', '/api/v1/links')).status, 200);

    const revoked = await api(pair.a, 'DELETE', `/api/v1/keys/${session.keyId}`);
    assert.equal(revoked.status, 204, revoked.body);
    const refused = await withCookie(pair.b, session, 'GET', '/api/v1/links');
    assert.equal(refused.status, 401, refused.body);
    assert.equal((await api(pair.b, 'GET', '/api/v1/links', undefined, memberKey)).status, 401, 'the key itself is refused on B too');
  });
});
