/** A small SVG bar chart of a click series: no chart library, fixed size, so nothing shifts when data arrives. */
import { svg } from './dom.js';

const WIDTH = 720;
const HEIGHT = 200;
const PAD = { left: 40, right: 8, top: 10, bottom: 24 };

export function seriesChart(points: { t: string; clicks: number }[], label: string, formatTick: (iso: string) => string): SVGElement {
  const max = Math.max(1, ...points.map((point) => point.clicks));
  const innerWidth = WIDTH - PAD.left - PAD.right;
  const innerHeight = HEIGHT - PAD.top - PAD.bottom;
  const barWidth = innerWidth / Math.max(1, points.length);
  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': label, class: 'chart', preserveAspectRatio: 'none' });
  chart.appendChild(svg('title', {}, label));
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD.top + innerHeight * (1 - fraction);
    chart.appendChild(svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: 'grid' }));
    chart.appendChild(svg('text', { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, String(Math.round(max * fraction))));
  }
  points.forEach((point, index) => {
    const height = (point.clicks / max) * innerHeight;
    const bar = svg('rect', {
      x: PAD.left + index * barWidth + barWidth * 0.1,
      y: PAD.top + innerHeight - height,
      width: Math.max(1, barWidth * 0.8),
      height,
      class: 'bar',
      'data-t': point.t,
    });
    bar.appendChild(svg('title', {}, `${formatTick(point.t)}: ${point.clicks}`));
    chart.appendChild(bar);
  });
  const ticks = Math.min(points.length, 6);
  for (let i = 0; i < ticks; i += 1) {
    const index = Math.floor((i * (points.length - 1)) / Math.max(1, ticks - 1));
    const point = points[index];
    if (point === undefined) continue;
    chart.appendChild(svg('text', { x: PAD.left + (index + 0.5) * barWidth, y: HEIGHT - 6, 'text-anchor': 'middle', class: 'axis' }, formatTick(point.t)));
  }
  return chart;
}
