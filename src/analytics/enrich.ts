/**
 * What the worker adds to a click before storing it: country, browser, OS, device, bot
 * flag, referring host and a daily unique-visitor key. Everything here is in memory and
 * synchronous except the visitor salts, which `ClickEnricher` fetches once per day of the
 * batch before enriching its events.
 */
import type { AttributedClickEvent } from '../clicks/click-event.js';
import { geoipCountries, type CountryLookup } from './country.js';
import type { EnrichedClick } from './enriched-click.js';
import { referrerHost } from './referrer.js';
import { createUserAgentClassifier, type UserAgentClassifier } from './user-agent.js';
import { isSaltDayUsable, utcDay, visitorKey, type VisitorSalts } from './visitor.js';

export interface EnrichOptions {
  /** Keep the client's IP address in the enriched click (CLICKS_STORE_RAW_IP). Off unless asked. */
  storeRawIp?: boolean;
  countries?: CountryLookup;
  agents?: UserAgentClassifier;
}

export interface EnrichContext extends EnrichOptions {
  /** The visitor salt of a UTC day, or null when there is none to use (the visitor is then unknown). */
  saltOf: (day: string) => Buffer | null;
}

const sharedAgents = createUserAgentClassifier();

export function enrich(event: AttributedClickEvent, context: EnrichContext): EnrichedClick {
  const agents = context.agents ?? sharedAgents;
  const countries = context.countries ?? geoipCountries;
  const agent = agents.classify(event.userAgent);
  const salt = event.ip === null ? null : context.saltOf(utcDay(event.at));
  return {
    id: event.id,
    linkId: event.linkId,
    code: event.code,
    at: event.at,
    method: event.method,
    referrerHost: referrerHost(event.referrer),
    country: countries.country(event.ip),
    browser: agent.browser,
    os: agent.os,
    device: agent.device,
    // A HEAD asks whether the link works without following it: a checker, not a visit.
    bot: agent.bot || event.method === 'HEAD',
    // Without an address, every client with the same agent string would be one visitor.
    visitor: salt === null || event.ip === null ? null : visitorKey(salt, event.ip, event.userAgent),
    ip: context.storeRawIp === true ? event.ip : null,
    userAgent: event.userAgent,
    referrer: event.referrer,
  };
}

export interface ClickEnricherOptions extends EnrichOptions {
  salts: VisitorSalts;
  /** Milliseconds since the epoch: decides which days' salts may still be used. */
  now?: () => number;
}

/** Enriches a batch from the queue: reads each day's salt once, then enriches in memory. */
export class ClickEnricher {
  private readonly now: () => number;
  private readonly agents: UserAgentClassifier;

  constructor(private readonly options: ClickEnricherOptions) {
    this.now = options.now ?? Date.now;
    this.agents = options.agents ?? sharedAgents;
  }

  /** Rejects when a salt cannot be read (the database is down): the batch should be retried. */
  async enrichBatch(events: readonly AttributedClickEvent[]): Promise<EnrichedClick[]> {
    const now = this.now();
    const days = new Set<string>();
    for (const event of events) {
      if (event.ip === null) continue;
      const day = utcDay(event.at);
      if (isSaltDayUsable(day, now)) days.add(day);
    }
    const salts = new Map(await Promise.all([...days].map(async (day) => [day, await this.options.salts.saltFor(day)] as const)));
    const context: EnrichContext = {
      storeRawIp: this.options.storeRawIp === true,
      countries: this.options.countries ?? geoipCountries,
      agents: this.agents,
      saltOf: (day) => salts.get(day) ?? null,
    };
    return events.map((event) => enrich(event, context));
  }
}
