/** One redirect served: the small fact the redirect path hands off and forgets. */
export interface ClickEvent {
  code: string;
  at: Date;
  method: 'GET' | 'HEAD';
  referrer: string | null;
  userAgent: string | null;
  /** A syntactically valid IPv4 or IPv6 address, or null. */
  ip: string | null;
}

/** Where the redirect path sends clicks. `record` never blocks and never throws. */
export interface ClickRecorder {
  record(event: ClickEvent): void;
  /** Writes what is buffered; resolves when it is stored (or failed and kept for retry). */
  flush(): Promise<void>;
  /** Stops the timer and writes everything that is left. */
  close(): Promise<void>;
  readonly buffered: number;
}
