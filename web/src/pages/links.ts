/** The links list: newest first, search, tag filter, sort, pages by cursor, per-row actions. */
import { call, query, type Link, type LinkPage } from '../api.js';
import { formatDate, formatNumber, h, notify, replace, safeHref } from '../dom.js';
import type { PageContext } from '../main.js';
import { confirmDialog, openQrDialog } from '../qr-dialog.js';

const PAGE_SIZE = 20;

export async function linksPage({ root }: PageContext): Promise<void> {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const q = h('input', { id: 'q', name: 'q', type: 'search', value: params.get('q') ?? '', placeholder: 'URL, alias or title' });
  const tag = h('input', { id: 'tag', name: 'tag', value: params.get('tag') ?? '' });
  const sort = h('select', { id: 'sort', name: 'sort' }, h('option', { value: 'newest' }, 'Newest first'), h('option', { value: 'oldest' }, 'Oldest first'));
  sort.value = params.get('sort') === 'oldest' ? 'oldest' : 'newest';
  const filters = h('form', { class: 'filters', role: 'search' },
    h('div', { class: 'field' }, h('label', { for: 'q' }, 'Search'), q),
    h('div', { class: 'field' }, h('label', { for: 'tag' }, 'Tag'), tag),
    h('div', { class: 'field' }, h('label', { for: 'sort' }, 'Sort'), sort),
    h('button', { type: 'submit' }, 'Apply'),
  );
  const status = h('p', { class: 'loading', role: 'status' }, 'Loading links…');
  const body = h('div', { class: 'table-wrap' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  replace(root,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Links'),
      h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/links/new' }, 'New link'), h('a', { class: 'button secondary', href: '#/links/bulk' }, 'Bulk create')),
    ),
    filters, status, body, pager,
  );

  // Cursors of the pages seen so far, for "Previous".
  const cursors: (string | null)[] = [null];
  const load = async (cursor: string | null): Promise<void> => {
    status.textContent = 'Loading links…';
    status.className = 'loading';
    const filter = { q: q.value.trim(), tag: tag.value.trim(), sort: sort.value };
    const page = await call<LinkPage>(`/links${query({ limit: PAGE_SIZE, cursor, ...filter })}`);
    status.textContent = page.items.length === 0 ? (filter.q || filter.tag ? 'No links match.' : 'No links yet: create your first one.') : '';
    status.className = page.items.length === 0 ? 'empty' : 'sr-only';
    replace(body, page.items.length === 0 ? null : table(page.items, () => void load(cursor)));
    void fillClicks(body, page.items);
    const previous = cursors.length > 1 ? h('button', { type: 'button', class: 'secondary', onclick: () => { cursors.pop(); void load(cursors[cursors.length - 1] ?? null); } }, 'Previous') : null;
    const next = page.nextCursor === null ? null : h('button', { type: 'button', class: 'secondary', onclick: () => { cursors.push(page.nextCursor); void load(page.nextCursor); } }, 'Next');
    replace(pager, previous, next);
  };
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    const search = query({ q: q.value.trim(), tag: tag.value.trim(), sort: sort.value === 'newest' ? null : sort.value });
    history.replaceState(null, '', `#/links${search}`);
    cursors.splice(1);
    void load(null).catch((error: unknown) => showError(status, error));
  });
  await load(null);
}

/** Per-row totals come in one batch call after the list, so the list itself shows at once. */
async function fillClicks(body: HTMLElement, links: Link[]): Promise<void> {
  try {
    const { items } = await call<{ items: { code: string; clicks: number }[] }>(`/stats/links${query({ codes: links.map((link) => link.code).join(',') })}`);
    const totals = new Map(items.map((item) => [item.code, item.clicks]));
    for (const row of body.querySelectorAll<HTMLElement>('tr[data-code]')) {
      const cell = row.querySelector('.clicks');
      if (cell !== null) cell.textContent = formatNumber(totals.get(row.dataset.code ?? '') ?? 0);
    }
  } catch {
    for (const cell of body.querySelectorAll('.clicks')) cell.textContent = '—';
  }
}

function showError(status: HTMLElement, error: unknown): void {
  status.className = 'error';
  status.setAttribute('role', 'alert');
  status.textContent = error instanceof Error ? error.message : String(error);
}

function table(links: Link[], reload: () => void): HTMLElement {
  return h('table', { class: 'links' },
    h('caption', { class: 'sr-only' }, 'Your links'),
    h('thead', {}, h('tr', {}, ...['Link', 'Destination', 'Tags', 'Clicks', 'Created', 'Actions'].map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, ...links.map((link) => row(link, reload))),
  );
}

function row(link: Link, reload: () => void): HTMLElement {
  const destination = safeHref(link.url);
  return h('tr', { 'data-code': link.code },
    h('td', { 'data-label': 'Link' },
      h('a', { href: `#/links/${link.code}`, class: 'strong' }, link.title ?? link.code),
      h('div', { class: 'mono muted' }, link.shortUrl),
      link.disabled ? h('span', { class: 'badge' }, 'disabled') : null,
    ),
    h('td', { 'data-label': 'Destination', class: 'dest' }, destination === null ? link.url : h('a', { href: destination, rel: 'noopener noreferrer nofollow', target: '_blank' }, link.url)),
    h('td', { 'data-label': 'Tags' }, ...link.tags.map((tag) => h('a', { class: 'tag', href: `#/links?tag=${encodeURIComponent(tag)}` }, tag))),
    h('td', { 'data-label': 'Clicks', class: 'num clicks' }, '…'),
    h('td', { 'data-label': 'Created' }, h('time', { datetime: link.createdAt }, formatDate(link.createdAt))),
    h('td', { 'data-label': 'Actions', class: 'row-actions' },
      h('button', { type: 'button', class: 'small', 'aria-label': `Copy ${link.shortUrl}`, onclick: () => void copy(link.shortUrl) }, 'Copy'),
      h('button', { type: 'button', class: 'small', 'aria-label': `QR code for ${link.code}`, onclick: () => openQrDialog(link) }, 'QR'),
      h('a', { class: 'button small', href: `#/links/${link.code}/edit`, 'aria-label': `Edit ${link.code}` }, 'Edit'),
      h('button', {
        type: 'button', class: 'small danger', 'aria-label': `Delete ${link.code}`,
        onclick: () => void remove(link, reload),
      }, 'Delete'),
    ),
  );
}

async function copy(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    notify(`Copied ${text}`);
  } catch {
    notify('Copying is not allowed here; select the short URL instead.');
  }
}

async function remove(link: Link, reload: () => void): Promise<void> {
  if (!(await confirmDialog('Delete link?', `${link.shortUrl} will stop working at once. This cannot be undone.`, 'Delete'))) return;
  try {
    await call(`/links/${encodeURIComponent(link.code)}`, { method: 'DELETE' });
    notify(`Deleted ${link.code}`);
    reload();
  } catch (error) {
    notify(error instanceof Error ? error.message : String(error));
  }
}
