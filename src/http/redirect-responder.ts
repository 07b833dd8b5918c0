/**
 * Every answer a short link gives, written once: the 30x (and the click it hands over),
 * the gone answer (fallback or 410), the not-found page (counted by the unknown-code
 * throttle), the throttled page and the password form. The fast path (fast-redirect.ts)
 * and the framework's routes (routes/redirect-routes.ts) both answer through it, on the raw
 * response, so they cannot drift apart. Pages are built once; nothing is allocated per
 * answer beyond the header object Node needs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClickRecorder } from '../clicks/click-event.js';
import { NO_STORE, type RedirectDecision } from '../links/redirect-decision.js';
import type { NotFoundThrottle } from '../ratelimit/not-found-throttle.js';
import { clickFrom, type ClickedLink } from './click-capture.js';
import { gonePage, notFoundPage, passwordPage, tooManyNotFoundPage, tooManyPasswordsPage } from './pages/html.js';

const HTML = 'text/html; charset=utf-8';
/** What Node refuses in a header value. */
export const INVALID_HEADER_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

/** The password form's variants: first visit, after a wrong guess, after too many. */
export type PasswordFormState = 'ask' | 'wrong' | 'too_many';

export class RedirectResponder {
  private readonly notFoundBody = notFoundPage();
  private readonly goneBody = gonePage();
  private readonly throttledBody = tooManyNotFoundPage();
  private readonly passwordBodies: Readonly<Record<PasswordFormState, string>> = {
    ask: passwordPage(false),
    wrong: passwordPage(true),
    too_many: tooManyPasswordsPage(),
  };

  /** `clicks` is null where the deployment keeps no analytics: no click is even built. */
  constructor(
    private readonly clicks: ClickRecorder | null,
    private readonly notFoundThrottle: NotFoundThrottle,
  ) {}

  /**
   * Writes a decision other than a visit-limited redirect (the caller consumes the visit
   * first). The location must be checked with `INVALID_HEADER_CHAR` by the caller, which
   * knows how to refuse it. Returns the status written.
   */
  answer(request: IncomingMessage, response: ServerResponse, reqId: string, ip: string, link: ClickedLink | null, decision: RedirectDecision): number {
    switch (decision.kind) {
      case 'redirect':
        return this.redirect(request, response, reqId, ip, link, decision.status, decision.location, decision.cacheControl);
      case 'gone':
        return this.gone(request, response, reqId, decision.fallbackUrl);
      case 'locked':
        return this.passwordForm(request, response, reqId, 'ask');
      case 'not_found':
        return this.notFound(request, response, reqId, ip);
    }
  }

  /** The only place a redirect hands over its click, attributed to the link it resolved. */
  redirect(
    request: IncomingMessage, response: ServerResponse, reqId: string, ip: string, link: ClickedLink | null,
    status: number, location: string, cacheControl: string,
  ): number {
    response.writeHead(status, { location, 'cache-control': cacheControl, 'x-request-id': reqId, 'content-length': '0' });
    response.end();
    if (link !== null && this.clicks !== null) this.clicks.record(clickFrom(link, request.method ?? 'GET', request.headers, ip));
    return status;
  }

  /** Expired, visit limit reached or disabled: the fallback URL when the link has one, else 410. */
  gone(request: IncomingMessage, response: ServerResponse, reqId: string, fallbackUrl: string | null): number {
    if (fallbackUrl === null) return this.page(request, response, reqId, 410, this.goneBody);
    response.writeHead(302, { location: fallbackUrl, 'cache-control': NO_STORE, 'x-request-id': reqId, 'content-length': '0' });
    response.end();
    return 302;
  }

  /** An unknown code (or what cannot be one): counted against the client's budget. */
  notFound(request: IncomingMessage, response: ServerResponse, reqId: string, ip: string): number {
    this.notFoundThrottle.notFound(ip);
    return this.page(request, response, reqId, 404, this.notFoundBody);
  }

  throttled(request: IncomingMessage, response: ServerResponse, reqId: string, retryAfterSeconds: number): number {
    return this.page(request, response, reqId, 429, this.throttledBody, String(retryAfterSeconds));
  }

  /** The form of a password-protected link: it names nothing about the destination. */
  passwordForm(request: IncomingMessage, response: ServerResponse, reqId: string, state: PasswordFormState, retryAfterSeconds = 0): number {
    const status = state === 'ask' ? 200 : state === 'wrong' ? 401 : 429;
    return this.page(request, response, reqId, status, this.passwordBodies[state], retryAfterSeconds > 0 ? String(retryAfterSeconds) : undefined);
  }

  private page(request: IncomingMessage, response: ServerResponse, reqId: string, status: number, body: string, retryAfter?: string): number {
    const headers: Record<string, string> = {
      'content-type': HTML,
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': NO_STORE,
      'x-request-id': reqId,
    };
    if (retryAfter !== undefined) headers['retry-after'] = retryAfter;
    response.writeHead(status, headers);
    response.end(request.method === 'HEAD' ? undefined : body);
    return status;
  }
}
