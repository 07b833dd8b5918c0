/** The dashboard: hash routes (`#/links`, `#/links/<code>`…) so no path is taken from link aliases. */
import './styles.css';
import { ApiError, call, setSession, type SessionInfo } from './api.js';
import { h, replace } from './dom.js';
import { bulkPage } from './pages/bulk.js';
import { keysPage } from './pages/keys.js';
import { linkFormPage } from './pages/link-form.js';
import { linksPage } from './pages/links.js';
import { overviewPage } from './pages/overview.js';
import { signInPage } from './pages/sign-in.js';
import { statsPage } from './pages/stats.js';

const main = document.getElementById('main') as HTMLElement;
const nav = document.getElementById('nav') as HTMLElement;
let session: SessionInfo | null = null;
/** Pages stop their timers and streams when left. */
let leave: (() => void) | null = null;

export interface PageContext {
  root: HTMLElement;
  session: SessionInfo;
  /** Called when the page is left. */
  onLeave: (cleanup: () => void) => void;
}

async function loadSession(): Promise<SessionInfo | null> {
  try {
    return await call<SessionInfo>('/session');
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 404)) return null;
    throw error;
  }
}

function signedIn(info: SessionInfo | null): void {
  session = info;
  setSession(info);
  nav.hidden = info === null;
  (document.getElementById('nav-keys') as HTMLElement).hidden = info?.role !== 'admin';
}

type Page = (context: PageContext, ...params: string[]) => Promise<void> | void;
const ROUTES: [RegExp, Page][] = [
  [/^\/links$/, linksPage],
  [/^\/links\/new$/, linkFormPage],
  [/^\/links\/bulk$/, bulkPage],
  [/^\/links\/([A-Za-z0-9_-]+)\/edit$/, linkFormPage],
  [/^\/links\/([A-Za-z0-9_-]+)$/, statsPage],
  [/^\/overview$/, overviewPage],
  [/^\/keys$/, keysPage],
];

async function route(): Promise<void> {
  // In-page anchors (the skip link's #main) are not pages.
  if (location.hash !== '' && !location.hash.startsWith('#/')) return;
  leave?.();
  leave = null;
  const path = location.hash.replace(/^#/, '') || '/links';
  if (session === null) {
    const root = h('div', { class: 'page' });
    replace(main, root);
    signInPage(root, async (info) => {
      signedIn(info);
      await route();
    });
    return;
  }
  for (const link of nav.querySelectorAll('a')) {
    if (path.startsWith(link.getAttribute('href')?.slice(1) ?? '\0')) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const found = ROUTES.map(([pattern, page]) => [pattern.exec(path), page] as const).find(([match]) => match !== null);
  const cleanups: (() => void)[] = [];
  leave = () => cleanups.forEach((cleanup) => cleanup());
  // Each visit renders into its own element: a page still loading when it is left writes
  // into a detached element, never over the next page.
  const root = h('div', { class: 'page' });
  replace(main, root);
  const context: PageContext = { root, session, onLeave: (cleanup) => cleanups.push(cleanup) };
  if (found === undefined) {
    replace(root, h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '#/links' }, 'Back to your links')));
    return;
  }
  const [match, page] = found;
  try {
    await page(context, ...(match?.slice(1) ?? []));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signedIn(null);
      await route();
      return;
    }
    replace(root, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, error instanceof Error ? error.message : String(error)));
  }
}

document.getElementById('sign-out')?.addEventListener('click', () => {
  void (async () => {
    try {
      await call('/session', { method: 'DELETE' });
    } finally {
      signedIn(null);
      location.hash = '#/links';
      await route();
    }
  })();
});

window.addEventListener('hashchange', () => void route());
void (async () => {
  try {
    signedIn(await loadSession());
  } catch {
    signedIn(null);
  }
  await route();
})();
