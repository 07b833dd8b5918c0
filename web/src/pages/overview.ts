/** The account overview: clicks per day over every link, and the most clicked links. */
import { call, query } from '../api.js';
import { seriesChart } from '../chart.js';
import { formatNumber, h, replace } from '../dom.js';
import type { PageContext } from '../main.js';

interface Overview {
  totals: { clicks: number; links: number };
  series: { t: string; clicks: number }[];
  topLinks: { code: string; title: string | null; clicks: number }[];
}

export async function overviewPage({ root }: PageContext): Promise<void> {
  const days = h('select', { id: 'o-days' }, ...[7, 30, 90, 365].map((value) => h('option', { value }, `Last ${value} days`)));
  const content = h('div', {}, h('p', { class: 'loading', role: 'status' }, 'Loading overview…'));
  const form = h('form', { class: 'filters' }, h('div', { class: 'field' }, h('label', { for: 'o-days' }, 'Range'), days), h('button', { type: 'submit' }, 'Show'));
  replace(root, h('h1', {}, 'Overview'), form, content);
  const load = async (): Promise<void> => {
    const to = new Date();
    const from = new Date(to.getTime() - (Number(days.value) - 1) * 86_400_000);
    const overview = await call<Overview>(`/stats/overview${query({ from: from.toISOString(), to: to.toISOString() })}`);
    replace(content,
      h('div', { class: 'totals' },
        h('div', { class: 'card' }, h('span', { class: 'muted' }, 'Clicks'), h('strong', { class: 'big' }, formatNumber(overview.totals.clicks))),
        h('div', { class: 'card' }, h('span', { class: 'muted' }, 'Links'), h('strong', { class: 'big' }, formatNumber(overview.totals.links))),
      ),
      h('div', { class: 'chart-box' }, seriesChart(overview.series, `Clicks per day, ${overview.totals.clicks} in all`, (iso) => new Date(iso).toLocaleDateString())),
      h('section', { class: 'card' }, h('h2', {}, 'Top links'),
        overview.topLinks.length === 0
          ? h('p', { class: 'empty' }, 'No clicks in this range yet.')
          : h('table', {},
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Link'), h('th', { scope: 'col', class: 'num' }, 'Clicks'))),
            h('tbody', {}, ...overview.topLinks.map((link) => h('tr', {}, h('td', {}, h('a', { href: `#/links/${link.code}` }, link.title ?? link.code)), h('td', { class: 'num' }, formatNumber(link.clicks))))),
          )),
    );
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void load();
  });
  await load();
}
