/** API keys, for admins: create (the secret is shown once), list, revoke. */
import { call } from '../api.js';
import { formatDate, h, notify, replace } from '../dom.js';
import type { PageContext } from '../main.js';
import { confirmDialog } from '../qr-dialog.js';

interface Key {
  id: string;
  name: string;
  role: 'admin' | 'member';
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export async function keysPage({ root, session }: PageContext): Promise<void> {
  if (session.role !== 'admin') {
    replace(root, h('h1', {}, 'API keys'), h('p', { class: 'empty' }, 'Only admin keys may manage API keys.'));
    return;
  }
  const name = h('input', { id: 'key-name', required: true, maxlength: 100 });
  const role = h('select', { id: 'key-role' }, h('option', { value: 'member' }, 'member'), h('option', { value: 'admin' }, 'admin'));
  const created = h('div', { 'aria-live': 'polite' });
  const list = h('div', { class: 'table-wrap' }, h('p', { class: 'loading', role: 'status' }, 'Loading keys…'));
  const form = h('form', { class: 'filters' },
    h('div', { class: 'field' }, h('label', { for: 'key-name' }, 'Name'), name),
    h('div', { class: 'field' }, h('label', { for: 'key-role' }, 'Role'), role),
    h('button', { type: 'submit' }, 'Create key'),
  );
  replace(root, h('h1', {}, 'API keys'), form, created, list);

  const load = async (): Promise<void> => {
    const { items } = await call<{ items: Key[] }>('/keys');
    replace(list, h('table', {},
      h('thead', {}, h('tr', {}, ...['Name', 'Role', 'Prefix', 'Created', 'Last used', 'State', 'Actions'].map((column) => h('th', { scope: 'col' }, column)))),
      h('tbody', {}, ...items.map((key) => h('tr', {},
        h('td', { 'data-label': 'Name' }, key.name),
        h('td', { 'data-label': 'Role' }, key.role),
        h('td', { 'data-label': 'Prefix', class: 'mono' }, `${key.prefix}…`),
        h('td', { 'data-label': 'Created' }, formatDate(key.createdAt)),
        h('td', { 'data-label': 'Last used' }, formatDate(key.lastUsedAt)),
        h('td', { 'data-label': 'State' }, key.revokedAt === null ? 'active' : `revoked ${formatDate(key.revokedAt)}`),
        h('td', { 'data-label': 'Actions' }, key.revokedAt !== null ? null : h('button', {
          type: 'button', class: 'small danger', 'aria-label': `Revoke ${key.name}`,
          onclick: () => void (async () => {
            if (!(await confirmDialog('Revoke key?', `Every request and dashboard session made with "${key.name}" stops at once.`, 'Revoke'))) return;
            try {
              await call(`/keys/${encodeURIComponent(key.id)}`, { method: 'DELETE' });
              await load();
            } catch (error) {
              notify(error instanceof Error ? error.message : String(error));
            }
          })(),
        }, 'Revoke')),
      ))),
    ));
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void (async () => {
      try {
        const key = await call<Key & { key: string }>('/keys', { method: 'POST', body: { name: name.value.trim(), role: role.value } });
        name.value = '';
        replace(created, h('div', { class: 'card notice', role: 'status' },
          h('p', {}, `Key "${key.name}" created. Copy it now: it is not shown again.`),
          h('input', { readonly: true, value: key.key, 'aria-label': 'The new API key', class: 'mono wide' }),
        ));
        await load();
      } catch (error) {
        notify(error instanceof Error ? error.message : String(error));
      }
    })();
  });
  await load();
}
