/** The link a request names, if the caller may see it: another member's link is not found, like an unknown one. */
import type { Actor, Link } from '../../links/link.js';
import { isCode } from '../../links/code-shape.js';
import type { LinkService } from '../../links/link-service.js';
import { AppError } from '../../shared/errors.js';

export async function ownedLink(links: LinkService, code: string, actor: Actor): Promise<Link> {
  // Anything that cannot be a code (control characters, NUL, over-long) never reaches the store.
  if (!isCode(code)) throw new AppError('link_not_found', { detail: 'No link with that code' });
  return links.get(code, actor);
}
