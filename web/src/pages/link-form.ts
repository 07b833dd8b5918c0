/**
 * Create a link (every field of the API) or edit one. Edits send If-Match with the ETag the
 * form was filled from, so a change made elsewhere meanwhile is shown as a conflict.
 */
import { ApiError, call, request, type Link } from '../api.js';
import { h, notify, replace } from '../dom.js';
import type { PageContext } from '../main.js';

/** datetime-local wants local wall time without a zone. */
function toLocalInput(iso: string | null): string {
  if (iso === null) return '';
  const date = new Date(iso);
  return new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

export async function linkFormPage({ root }: PageContext, code?: string): Promise<void> {
  let link: Link | null = null;
  let etag: string | null = null;
  if (code !== undefined) {
    replace(root, h('p', { class: 'loading', role: 'status' }, 'Loading link…'));
    const response = await request(`/links/${encodeURIComponent(code)}`, { headers: { 'Cache-Control': 'no-cache' } });
    etag = response.headers.get('ETag');
    link = (await response.json()) as Link;
  }
  const editing = link !== null;
  const errors = new Map<string, HTMLElement>();
  const field = (name: string, label: string, control: HTMLInputElement | HTMLSelectElement, help?: string): HTMLElement => {
    control.id = `f-${name}`;
    control.name = name;
    const error = h('p', { class: 'field-error', id: `e-${name}` });
    errors.set(name, error);
    control.setAttribute('aria-describedby', `e-${name}${help === undefined ? '' : ` h-${name}`}`);
    return h('div', { class: 'field' }, h('label', { for: `f-${name}` }, label), control, help === undefined ? null : h('p', { class: 'muted', id: `h-${name}` }, help), error);
  };
  const url = h('input', { type: 'url', required: true, value: link?.url ?? '', placeholder: 'https://example.com/page' });
  const alias = h('input', { value: link?.alias ?? '', disabled: editing, pattern: '[A-Za-z0-9_-]{1,64}' });
  const title = h('input', { value: link?.title ?? '' });
  const tags = h('input', { value: link?.tags.join(', ') ?? '' });
  const expiresAt = h('input', { type: 'datetime-local', value: toLocalInput(link?.expiresAt ?? null) });
  const maxVisits = h('input', { type: 'number', min: 1, step: 1, value: link?.maxVisits ?? '' });
  const redirectType = h('select', {}, ...[302, 301, 307, 308].map((status) => h('option', { value: status }, String(status))));
  redirectType.value = String(link?.redirectType ?? 302);
  const forwardQuery = h('input', { type: 'checkbox', id: 'f-forwardQuery', name: 'forwardQuery', checked: link?.forwardQuery ?? true });
  const fallbackUrl = h('input', { type: 'url', value: link?.fallbackUrl ?? '' });
  const formError = h('div', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, editing ? 'Save changes' : 'Create link');
  const form = h('form', { class: 'card form', novalidate: true },
    h('h1', {}, editing ? `Edit ${link?.code ?? ''}` : 'New link'),
    formError,
    field('url', 'Destination URL', url),
    field('alias', 'Alias (optional)', alias, editing ? 'An alias cannot be changed.' : '1-64 letters, digits, _ or -. Left empty, a short code is made.'),
    field('title', 'Title (optional)', title),
    field('tags', 'Tags (optional)', tags, 'Separated by commas.'),
    field('expiresAt', 'Expires at (optional)', expiresAt, 'In your time zone.'),
    field('maxVisits', 'Maximum visits (optional)', maxVisits),
    field('redirectType', 'Redirect type', redirectType, '302 counts every click; 301/308 may be cached by browsers.'),
    h('div', { class: 'field check' }, forwardQuery, h('label', { for: 'f-forwardQuery' }, 'Forward the short URL\'s query string')),
    field('fallbackUrl', 'Fallback URL (optional)', fallbackUrl, 'Where an expired or used-up link leads instead of a 410 page.'),
    h('div', { class: 'actions' }, submit, h('a', { class: 'button secondary', href: '#/links' }, 'Cancel')),
  );

  const body = (): Record<string, unknown> => {
    const text = (input: HTMLInputElement): string | null => (input.value.trim() === '' ? null : input.value.trim());
    const values: Record<string, unknown> = {
      url: url.value.trim(),
      title: text(title),
      tags: tags.value.split(',').map((tag) => tag.trim()).filter((tag) => tag !== ''),
      expiresAt: expiresAt.value === '' ? null : new Date(expiresAt.value).toISOString(),
      maxVisits: maxVisits.value === '' ? null : Number(maxVisits.value),
      redirectType: Number(redirectType.value),
      forwardQuery: forwardQuery.checked,
      fallbackUrl: text(fallbackUrl),
    };
    if (!editing && alias.value.trim() !== '') values.alias = alias.value.trim();
    return values;
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    for (const error of errors.values()) error.textContent = '';
    formError.textContent = '';
    submit.disabled = true;
    void (async () => {
      try {
        const saved = editing && link !== null
          ? await call<Link>(`/links/${encodeURIComponent(link.code)}`, { method: 'PATCH', body: body(), headers: etag === null ? {} : { 'If-Match': etag } })
          : await call<Link>('/links', { method: 'POST', body: body() });
        notify(editing ? `Saved ${saved.code}` : `Created ${saved.shortUrl}`);
        location.hash = `#/links/${saved.code}`;
      } catch (error) {
        showProblem(error);
      } finally {
        submit.disabled = false;
      }
    })();
  });

  const showProblem = (error: unknown): void => {
    if (error instanceof ApiError && error.status === 412) {
      replace(formError, 'This link was changed elsewhere since you opened it. ', h('a', { href: `#/links/${code ?? ''}/edit`, onclick: () => void linkFormPage({ root } as PageContext, code) }, 'Load the current version'), ' (your changes here are not saved).');
      return;
    }
    // Alias problems (taken, reserved) name no field list; they are about the alias all the same.
    if (error instanceof ApiError && error.errors.length === 0 && error.code.startsWith('alias_')) {
      (errors.get('alias') as HTMLElement).textContent = error.detail;
      alias.focus();
      return;
    }
    if (error instanceof ApiError && error.errors.length > 0) {
      let first: HTMLElement | null = null;
      for (const { field: name, message } of error.errors) {
        const key = name.replace(/\[\d+\]$/, '');
        const target = errors.get(key);
        if (target === undefined) {
          formError.append(h('p', {}, `${name}: ${message}`));
          continue;
        }
        target.textContent = target.textContent === '' ? message : `${target.textContent}; ${message}`;
        first ??= document.getElementById(`f-${key}`);
      }
      formError.prepend(h('p', {}, error.detail));
      first?.focus();
      return;
    }
    formError.textContent = error instanceof Error ? error.message : String(error);
  };

  replace(root, form);
  url.focus();
}
