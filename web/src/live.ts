/**
 * The live click stream read with fetch() (so the session cookie, not a key, authenticates
 * it): server-sent events parsed by hand, reconnecting after a pause until stopped.
 */
export interface LiveClick {
  id: string;
  code: string;
  at: string;
  country: string | null;
  referrerHost: string | null;
  browser: string | null;
  os: string | null;
  device: string;
  bot: boolean;
}

export function followClicks(code: string, onClick: (click: LiveClick) => void, onState: (state: 'open' | 'closed') => void): () => void {
  const controller = new AbortController();
  let stopped = false;
  const run = async (): Promise<void> => {
    while (!stopped) {
      try {
        const response = await fetch(`/api/v1/links/${encodeURIComponent(code)}/events`, {
          headers: { Accept: 'text/event-stream' }, credentials: 'same-origin', signal: controller.signal, cache: 'no-store',
        });
        if (!response.ok || response.body === null) throw new Error(`events: ${response.status}`);
        onState('open');
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const lines = block.split('\n');
            const event = lines.find((line) => line.startsWith('event:'))?.slice(6).trim();
            const data = lines.filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trimStart()).join('\n');
            if (event === 'click' && data !== '') onClick(JSON.parse(data) as LiveClick);
          }
        }
      } catch {
        if (stopped) return;
      }
      onState('closed');
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  };
  void run();
  return () => {
    stopped = true;
    controller.abort();
  };
}

/** 🇩🇪 from "DE": regional indicator symbols, no images. */
export function flag(country: string | null): string {
  if (country === null || !/^[A-Z]{2}$/.test(country)) return '';
  return String.fromCodePoint(...[...country].map((char) => 0x1f1e6 + char.charCodeAt(0) - 65));
}
