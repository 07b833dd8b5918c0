/**
 * What the HTTP layer may ask of the analytics store: a link's stats, the account overview
 * and per-link totals, how an export is answered, and whether open event streams still
 * hold. It owns the store handle, so routes never query the store themselves. Every read
 * goes to the primary: rollups and raw clicks are written there and a replica may lag, and
 * a revoked key must end its streams at once.
 */
import { LinkImportRepository } from '../links/link-import-repository.js';
import type { Queryable } from '../storage/database.js';
import { planExport, type ExportLimits, type ExportPlan } from './click-csv-export.js';
import { accountOverview, linkTotals, type Overview, type OverviewOptions } from './overview-query.js';
import { linkStats, type LinkStats, type LinkStatsOptions } from './stats-query.js';
import { revokedGrants, type StreamGrant, type StreamGrantCheck } from './stream-authorization.js';

/** A link's stats, its totals counting the visits it had before it was imported. */
export type LinkStatsWithImports = LinkStats & { totals: LinkStats['totals'] & { imported: number } };

export class AnalyticsService implements StreamGrantCheck {
  private readonly imports: LinkImportRepository;

  constructor(
    private readonly db: Queryable,
    private readonly exportLimits: ExportLimits,
  ) {
    this.imports = new LinkImportRepository(db);
  }

  async linkStats(linkId: string, options: LinkStatsOptions): Promise<LinkStatsWithImports> {
    const [stats, imported] = await Promise.all([linkStats(this.db, linkId, options), this.imports.importedClicks(linkId)]);
    return { ...stats, totals: { ...stats.totals, imported } };
  }

  overview(options: OverviewOptions): Promise<Overview> {
    return accountOverview(this.db, options);
  }

  /** All-time clicks of the links among `codes` that `ownerKeyId` owns (all of them for null, an admin). */
  linkTotals(codes: readonly string[], ownerKeyId: string | null, bots: 'exclude' | 'include'): Promise<{ code: string; clicks: number }[]> {
    return linkTotals(this.db, codes, ownerKeyId, bots);
  }

  /** The export of a link's clicks in [from, to): its file at once, or a job to queue. */
  planExport(linkId: string, from: Date, to: Date): Promise<ExportPlan> {
    return planExport(this.db, linkId, from, to, this.exportLimits);
  }

  revokedGrants(grants: readonly StreamGrant[]): Promise<Set<string>> {
    return revokedGrants(this.db, grants);
  }
}
