/**
 * Gives each click the link it belongs to. Events of this version carry the link the
 * redirect path resolved; events of wire version 1 (left in a queue or spool by the version
 * before, or copied from the old click log) name only a code, and get the link that has
 * that code now, provided the link already existed when the click happened. A click of a
 * code with no such link belonged to a link deleted since: it is dropped, as the purge of
 * that link's analytics would drop it (and counting it for a later link of the same code
 * is exactly what must not happen).
 */
import type { AttributedClickEvent, IdentifiedClickEvent } from '../clicks/click-event.js';
import type { Queryable } from '../storage/database.js';

export interface Attribution {
  events: AttributedClickEvent[];
  /** Events without a link to give them to, dropped. */
  orphaned: number;
}

export async function attributeClicks(db: Queryable, events: readonly IdentifiedClickEvent[]): Promise<Attribution> {
  const codes = new Set<string>();
  for (const event of events) if (event.linkId === undefined) codes.add(event.code);
  if (codes.size === 0) return { events: events as AttributedClickEvent[], orphaned: 0 };
  const found = await db.query<{ code: string; id: string; created_at: Date }>(
    'SELECT code, id::text AS id, created_at FROM links WHERE code = ANY($1::text[])',
    [[...codes]],
  );
  const byCode = new Map(found.rows.map((row) => [row.code, row]));
  const attributed: AttributedClickEvent[] = [];
  for (const event of events) {
    if (event.linkId !== undefined) {
      attributed.push(event as AttributedClickEvent);
      continue;
    }
    const link = byCode.get(event.code);
    if (link !== undefined && link.created_at.getTime() <= event.at.getTime()) attributed.push({ ...event, linkId: link.id });
  }
  return { events: attributed, orphaned: events.length - attributed.length };
}
