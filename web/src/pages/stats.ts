/** A link's statistics: totals, a series chart, breakdowns, CSV export and live clicks. */
import { call, query, request, type Link, type Ranked, type Stats } from '../api.js';
import { seriesChart } from '../chart.js';
import { formatDate, formatNumber, h, notify, replace, safeHref } from '../dom.js';
import { flag, followClicks, type LiveClick } from '../live.js';
import type { PageContext } from '../main.js';
import { openQrDialog } from '../qr-dialog.js';

const DAY_MS = 86_400_000;

function dayInput(date: Date): string {
  return new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 10);
}

export async function statsPage(context: PageContext, code: string): Promise<void> {
  const { root } = context;
  replace(root, h('p', { class: 'loading', role: 'status' }, 'Loading statistics…'));
  const link = await call<Link>(`/links/${encodeURIComponent(code)}`);
  const now = new Date();
  const from = h('input', { type: 'date', id: 's-from', value: dayInput(new Date(now.getTime() - 6 * DAY_MS)) });
  const to = h('input', { type: 'date', id: 's-to', value: dayInput(now) });
  const interval = h('select', { id: 's-interval' }, ...['hour', 'day', 'minute'].map((value) => h('option', { value }, value)));
  const bots = h('input', { type: 'checkbox', id: 's-bots' });
  const controls = h('form', { class: 'filters' },
    h('div', { class: 'field' }, h('label', { for: 's-from' }, 'From'), from),
    h('div', { class: 'field' }, h('label', { for: 's-to' }, 'To (inclusive)'), to),
    h('div', { class: 'field' }, h('label', { for: 's-interval' }, 'Interval'), interval),
    h('div', { class: 'field check' }, bots, h('label', { for: 's-bots' }, 'Include bots')),
    h('button', { type: 'submit' }, 'Show'),
    h('button', { type: 'button', class: 'secondary', id: 'export', onclick: () => void exportCsv() }, 'Export CSV'),
  );
  const clicksTotal = h('strong', { class: 'big', id: 'total-clicks' }, '…');
  const uniquesTotal = h('strong', { class: 'big', id: 'total-uniques' }, '…');
  const status = h('p', { role: 'status', class: 'loading' }, 'Loading…');
  const chartBox = h('div', { class: 'chart-box', id: 'chart' });
  const breakdowns = h('div', { class: 'grid' });
  const liveList = h('ol', { class: 'live', id: 'live-clicks', 'aria-live': 'polite' });
  const liveState = h('span', { class: 'muted' }, 'connecting…');
  const destination = safeHref(link.url);
  replace(root,
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, link.title ?? link.code), h('p', { class: 'mono muted' }, link.shortUrl, ' → ', destination === null ? link.url : h('a', { href: destination, rel: 'noopener noreferrer nofollow' }, link.url))),
      h('div', { class: 'actions' },
        h('a', { class: 'button secondary', href: `#/links/${link.code}/edit` }, 'Edit'),
        h('button', { type: 'button', class: 'secondary', onclick: () => openQrDialog(link) }, 'QR code'),
      ),
    ),
    controls,
    h('div', { class: 'totals' },
      h('div', { class: 'card' }, h('span', { class: 'muted' }, 'Clicks'), clicksTotal),
      h('div', { class: 'card' }, h('span', { class: 'muted' }, 'Unique visitors'), uniquesTotal),
    ),
    status, chartBox, breakdowns,
    h('section', { class: 'card' }, h('h2', {}, 'Live clicks ', liveState), liveList),
  );

  const range = () => {
    const start = new Date(`${from.value}T00:00`);
    const end = new Date(new Date(`${to.value}T00:00`).getTime() + DAY_MS);
    return { from: start.toISOString(), to: end.toISOString() };
  };
  let current: Stats | null = null;
  const load = async (): Promise<void> => {
    status.textContent = 'Loading…';
    status.className = 'loading';
    try {
      const stats = await call<Stats>(`/links/${encodeURIComponent(code)}/stats${query({ ...range(), interval: interval.value, bots: bots.checked ? 'include' : null })}`);
      current = stats;
      status.textContent = '';
      status.className = 'sr-only';
      render(stats);
    } catch (error) {
      status.className = 'error';
      status.textContent = error instanceof Error ? error.message : String(error);
    }
  };
  const tick = (iso: string): string => {
    const date = new Date(iso);
    return interval.value === 'day' ? date.toLocaleDateString() : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  };
  const render = (stats: Stats): void => {
    clicksTotal.textContent = formatNumber(stats.totals.clicks);
    uniquesTotal.textContent = formatNumber(stats.totals.uniques);
    replace(chartBox, seriesChart(stats.series, `Clicks per ${stats.range.interval}, ${stats.totals.clicks} in all`, tick));
    replace(breakdowns,
      rankTable('Top referrers', 'Referrer', stats.referrers, (value) => value ?? 'Direct'),
      rankTable('Countries', 'Country', stats.countries, (value) => (value === null ? 'Unknown' : `${flag(value)} ${value}`)),
      rankTable('Browsers', 'Browser', stats.browsers, (value) => value ?? 'Unknown'),
      rankTable('Operating systems', 'OS', stats.os, (value) => value ?? 'Unknown'),
      rankTable('Devices', 'Device', stats.devices, (value) => value ?? 'Unknown'),
    );
  };

  const onClick = (click: LiveClick): void => {
    if (click.bot && !bots.checked) return;
    liveList.prepend(h('li', {}, h('time', { datetime: click.at }, formatDate(click.at)), ' ', `${flag(click.country)} ${click.country ?? ''}`.trim(), ' · ', click.browser ?? 'unknown browser', ' · ', click.referrerHost ?? 'direct'));
    while (liveList.children.length > 20) liveList.lastElementChild?.remove();
    // The rollups catch up within a second or two; until then the live click is added here.
    if (current !== null) {
      current.totals.clicks += 1;
      const at = new Date(click.at).getTime();
      const bucket = [...current.series].reverse().find((point) => new Date(point.t).getTime() <= at);
      if (bucket !== undefined && at < new Date(current.range.to).getTime()) bucket.clicks += 1;
      render(current);
    }
  };
  context.onLeave(followClicks(code, onClick, (state) => (liveState.textContent = state === 'open' ? '(connected)' : '(reconnecting…)')));

  const exportCsv = async (): Promise<void> => {
    try {
      const response = await request(`/links/${encodeURIComponent(code)}/stats/export${query(range())}`, { headers: { Accept: 'text/csv, application/json' } });
      let file = response;
      if (response.status === 202) {
        notify('The export is being prepared…');
        let job = (await response.json()) as { href: string; status: string; fileHref: string | null; error: string | null };
        while (job.status === 'queued' || job.status === 'running') {
          await new Promise((resolve) => setTimeout(resolve, 1000));
          job = await call(job.href.replace(/^\/api\/v1/, ''));
        }
        if (job.fileHref === null) throw new Error(job.error ?? 'The export failed');
        file = await request(job.fileHref.replace(/^\/api\/v1/, ''), { headers: { Accept: 'text/csv' } });
      }
      const url = URL.createObjectURL(await file.blob());
      const anchor = h('a', { href: url, download: `${code}-clicks.csv` });
      document.body.appendChild(anchor);
      anchor.click();
      anchor.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      notify(error instanceof Error ? error.message : String(error));
    }
  };

  controls.addEventListener('submit', (event) => {
    event.preventDefault();
    void load();
  });
  await load();
}

function rankTable(title: string, column: string, rows: Ranked[], label: (value: string | null) => string): HTMLElement {
  return h('section', { class: 'card' },
    h('h2', {}, title),
    rows.length === 0
      ? h('p', { class: 'empty' }, 'No clicks in this range.')
      : h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, column), h('th', { scope: 'col', class: 'num' }, 'Clicks'))),
        h('tbody', {}, ...rows.map((row) => h('tr', {}, h('td', {}, label(row.value)), h('td', { class: 'num' }, formatNumber(row.clicks))))),
      ),
  );
}
