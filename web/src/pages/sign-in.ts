/** Sign-in: the key goes once to POST /api/v1/session in a JSON body; the page keeps only the session's CSRF token. */
import { ApiError, call, type SessionInfo } from '../api.js';
import { h, replace } from '../dom.js';

export function signInPage(root: HTMLElement, done: (session: SessionInfo) => Promise<void>): void {
  const input = h('input', { id: 'api-key', name: 'key', type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false', 'aria-describedby': 'key-help' });
  const error = h('p', { class: 'error', role: 'alert', id: 'sign-in-error' });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card narrow', novalidate: true },
    h('h1', {}, 'Sign in'),
    h('label', { for: 'api-key' }, 'API key'),
    input,
    h('p', { id: 'key-help', class: 'muted' }, 'The admin key is printed when Shunt first starts (or set with ADMIN_API_KEY). It is exchanged for a session cookie and not kept by this page.'),
    error,
    button,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    error.textContent = '';
    if (input.value.trim() === '') {
      error.textContent = 'Enter an API key.';
      input.focus();
      return;
    }
    button.disabled = true;
    void (async () => {
      try {
        const session = await call<SessionInfo>('/session', { method: 'POST', body: { key: input.value.trim() } });
        input.value = '';
        await done(session);
      } catch (caught) {
        error.textContent = caught instanceof ApiError && caught.status === 401 ? 'That key is not valid or has been revoked.' : caught instanceof Error ? caught.message : String(caught);
        input.focus();
      } finally {
        button.disabled = false;
      }
    })();
  });
  replace(root, form);
  input.focus();
}
