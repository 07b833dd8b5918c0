/**
 * Tells every instance that a client is throttled, so a guesser over its shared budget is
 * refused everywhere at once and not only by the instance that counted the last guess.
 */
import type { RedisConnection } from '../redis/redis-connection.js';
import type { ThrottleBroadcast } from './not-found-throttle.js';

export class RedisThrottleBroadcast implements ThrottleBroadcast {
  private readonly handlers: ((ip: string, untilMs: number) => void)[] = [];

  constructor(
    private readonly redis: RedisConnection,
    private readonly channel: string,
  ) {
    const { subscriber } = redis;
    subscriber.on('message', (from: string, text: string) => {
      if (from !== channel) return;
      const message = parse(text);
      if (message !== null) for (const handler of this.handlers) handler(message.ip, message.until);
    });
    subscriber.on('ready', () => {
      subscriber.subscribe(channel).catch(() => undefined);
    });
  }

  publish(ip: string, untilMs: number): void {
    this.redis.run((r) => r.publish(this.channel, JSON.stringify({ ip, until: untilMs }))).catch(() => undefined);
  }

  onBlock(handler: (ip: string, untilMs: number) => void): void {
    this.handlers.push(handler);
  }
}

function parse(text: string): { ip: string; until: number } | null {
  try {
    const value = JSON.parse(text) as { ip?: unknown; until?: unknown };
    return typeof value.ip === 'string' && typeof value.until === 'number' ? { ip: value.ip, until: value.until } : null;
  } catch {
    return null;
  }
}
