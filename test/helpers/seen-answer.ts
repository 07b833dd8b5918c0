/** One answer as the fast-path parity tests compare it: who gave it, and what a client sees of it. */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export interface SeenAnswer<Header extends string, How extends string = string> {
  how: How;
  status: number;
  headers: Record<Header, string | undefined>;
  body: string;
  requestId: string | undefined;
}

/** The compared headers of an answer, as text (absent ones undefined). */
export function pickHeaders<Header extends string>(headers: IncomingHttpHeaders | OutgoingHttpHeaders, names: readonly Header[]): Record<Header, string | undefined> {
  return Object.fromEntries(names.map((name) => [name, headers[name] === undefined ? undefined : String(headers[name])])) as Record<Header, string | undefined>;
}
