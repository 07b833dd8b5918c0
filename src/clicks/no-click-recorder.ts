import type { ClickEvent, ClickRecorder } from './click-event.js';

/** CLICKS_ENABLED=false: the deployment keeps no analytics, so a click is counted nowhere. */
export class NoClickRecorder implements ClickRecorder {
  readonly buffered = 0;

  record(_event: ClickEvent): void {}

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
