/** Bulk create: one URL per line (optionally `url,alias,title,tags` as CSV), pasted or from a file; one result per row. */
import { call, type Link } from '../api.js';
import { h, replace } from '../dom.js';
import type { PageContext } from '../main.js';

interface BulkItem {
  status: number;
  link?: Link;
  problem?: { detail?: string; title?: string };
}

/** Minimal RFC 4180 parsing: quoted cells may hold commas and doubled quotes. */
export function parseCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    const char = line[i] as string;
    if (quoted) {
      if (char === '"' && line[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (char === '"') quoted = false;
      else cell += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      cells.push(cell);
      cell = '';
    } else cell += char;
  }
  cells.push(cell);
  return cells.map((value) => value.trim());
}

function toItems(text: string): Record<string, unknown>[] {
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '' && !/^url\s*(,|$)/i.test(line)).map((line) => {
    const [url = '', alias = '', title = '', tags = ''] = parseCsvLine(line);
    const item: Record<string, unknown> = { url };
    if (alias !== '') item.alias = alias;
    if (title !== '') item.title = title;
    if (tags !== '') item.tags = tags.split(/[;|]/).map((tag) => tag.trim()).filter(Boolean);
    return item;
  });
}

export function bulkPage({ root }: PageContext): void {
  const text = h('textarea', { id: 'bulk-text', rows: 8, placeholder: 'https://example.com/a\nhttps://example.com/b,my-alias,A title,tag1;tag2', 'aria-describedby': 'bulk-help' });
  const file = h('input', { type: 'file', id: 'bulk-file', accept: '.csv,text/csv,text/plain' });
  const error = h('p', { class: 'error', role: 'alert' });
  const results = h('div', { id: 'bulk-results', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Create links');
  const form = h('form', { class: 'card form' },
    h('h1', {}, 'Bulk create'),
    h('div', { class: 'field' }, h('label', { for: 'bulk-text' }, 'Links, one per line'), text,
      h('p', { class: 'muted', id: 'bulk-help' }, 'Each line: url[,alias[,title[,tags separated by ;]]]. A header line starting with "url" is skipped. Up to 1000 lines.')),
    h('div', { class: 'field' }, h('label', { for: 'bulk-file' }, 'Or upload a CSV file'), file),
    error,
    h('div', { class: 'actions' }, submit, h('a', { class: 'button secondary', href: '#/links' }, 'Back to links')),
  );
  file.addEventListener('change', () => {
    const chosen = file.files?.[0];
    if (chosen !== undefined) void chosen.text().then((content) => (text.value = content));
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    error.textContent = '';
    const items = toItems(text.value);
    if (items.length === 0) {
      error.textContent = 'Paste at least one URL.';
      text.focus();
      return;
    }
    if (items.length > 1000) {
      error.textContent = `At most 1000 links at once (got ${items.length}).`;
      return;
    }
    submit.disabled = true;
    void (async () => {
      try {
        const answer = await call<{ items: BulkItem[] }>('/links/bulk', { method: 'POST', body: { links: items } });
        const created = answer.items.filter((item) => item.status === 201).length;
        replace(results,
          h('p', { role: 'status' }, `${created} of ${answer.items.length} created.`),
          h('table', {},
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Line'), h('th', { scope: 'col' }, 'URL'), h('th', { scope: 'col' }, 'Result'))),
            h('tbody', {}, ...answer.items.map((item, index) => h('tr', { class: item.status === 201 ? 'ok' : 'failed' },
              h('td', {}, String(index + 1)),
              h('td', { class: 'dest' }, typeof items[index]?.url === 'string' ? items[index].url : ''),
              h('td', {}, item.link !== undefined ? h('a', { href: `#/links/${item.link.code}` }, item.link.shortUrl) : `Failed (${item.status}): ${item.problem?.detail ?? item.problem?.title ?? ''}`),
            ))),
          ),
        );
      } catch (caught) {
        error.textContent = caught instanceof Error ? caught.message : String(caught);
      } finally {
        submit.disabled = false;
      }
    })();
  });
  replace(root, form, results);
}
