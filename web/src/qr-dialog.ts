/** A link's QR code (from the public /{code}/qr), with SVG and PNG downloads. */
import type { Link } from './api.js';
import { h } from './dom.js';

export function openQrDialog(link: Link): void {
  const svgHref = `/${encodeURIComponent(link.code)}/qr?format=svg&size=256`;
  const pngHref = `/${encodeURIComponent(link.code)}/qr?format=png&size=512`;
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'qr-title' },
    h('h2', { id: 'qr-title' }, 'QR code'),
    h('p', { class: 'mono' }, link.shortUrl),
    h('img', { src: svgHref, width: 256, height: 256, alt: `QR code for ${link.shortUrl}`, class: 'qr' }),
    h('div', { class: 'actions' },
      h('a', { href: svgHref, download: `${link.code}.svg`, class: 'button' }, 'Download SVG'),
      h('a', { href: pngHref, download: `${link.code}.png`, class: 'button' }, 'Download PNG'),
      h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Close'),
    ),
  );
  dialog.addEventListener('close', () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
}

/** Resolves true when the person confirms. */
export function confirmDialog(title: string, message: string, action: string): Promise<boolean> {
  return new Promise((resolve) => {
    let confirmed = false;
    const dialog = h('dialog', { class: 'dialog', role: 'alertdialog', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', {}, message),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'danger', onclick: () => { confirmed = true; dialog.close(); } }, action),
        h('button', { type: 'button', class: 'secondary', autofocus: true, onclick: () => dialog.close() }, 'Cancel'),
      ),
    );
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(confirmed);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}
