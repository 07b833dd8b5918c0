/**
 * Browser, OS, device type and bot flag from a User-Agent header. Bowser (MIT) parses;
 * isbot (Unlicense) recognises crawlers, scripts and HTTP libraries, which Bowser mostly
 * does not. Parsing costs microseconds while a link's traffic repeats a few hundred agent
 * strings, so results are kept per string in a bounded LRU.
 *
 * What a User-Agent cannot tell: iPads since iPadOS 13 send the desktop Safari string of a
 * Mac, so they count as desktop (telling them apart needs client hints or script).
 */
import Bowser from 'bowser';
import { isbot } from 'isbot';
import { LRUCache } from 'lru-cache';
import type { DeviceType } from './enriched-click.js';

export interface AgentFacts {
  readonly browser: string | null;
  readonly os: string | null;
  readonly device: DeviceType;
  /** A crawler, script or library by its agent string alone (a HEAD request is judged elsewhere). */
  readonly bot: boolean;
}

export interface UserAgentClassifier {
  classify(userAgent: string | null): AgentFacts;
}

/**
 * No User-Agent at all counts as a bot: every browser sends one, and what omits it is a
 * script, a monitor or a privacy proxy acting for nobody in particular. The click is still
 * kept, only flagged, so a report can include it.
 */
const ABSENT: AgentFacts = Object.freeze({ browser: null, os: null, device: 'bot', bot: true });

const NAMED_DEVICES: ReadonlySet<string> = new Set<DeviceType>(['desktop', 'mobile', 'tablet', 'bot']);

/** Televisions, consoles, wearables and agents that name no platform are 'other'. */
function deviceOf(platformType: string | undefined): DeviceType {
  return platformType !== undefined && NAMED_DEVICES.has(platformType) ? (platformType as DeviceType) : 'other';
}

export function classifyUserAgent(userAgent: string | null): AgentFacts {
  if (userAgent === null || userAgent.trim() === '') return ABSENT;
  const parsed = Bowser.parse(userAgent);
  const bot = isbot(userAgent) || parsed.platform.type === 'bot';
  return Object.freeze({
    browser: parsed.browser.name || null,
    os: parsed.os.name || null,
    device: bot ? 'bot' : deviceOf(parsed.platform.type),
    bot,
  });
}

export interface CachedClassifierOptions {
  /** Distinct agent strings remembered; each entry is the string (at most 1 KiB) and its facts. */
  maxEntries?: number;
}

export function createUserAgentClassifier(options: CachedClassifierOptions = {}): UserAgentClassifier {
  const cache = new LRUCache<string, AgentFacts>({ max: options.maxEntries ?? 10_000 });
  return {
    classify(userAgent) {
      if (userAgent === null) return ABSENT;
      let facts = cache.get(userAgent);
      if (facts === undefined) {
        facts = classifyUserAgent(userAgent);
        cache.set(userAgent, facts);
      }
      return facts;
    },
  };
}
