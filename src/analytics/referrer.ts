/**
 * The host a click came from, for "top referrers". Only the host: paths and queries of
 * referring pages are often private (search terms, tokens) and too scattered to rank.
 */

/**
 * Lower-cased host of the Referer, or null when there is none, it is not a URL, or it has no
 * host (`about:blank`, `file:`). Any scheme with a host counts, so app referrers such as
 * `android-app://com.google.android.gm/` name the app. Clicks from Shunt's own pages (the
 * preview page) keep Shunt's host: they are real traffic, and a report can filter them.
 */
export function referrerHost(referrer: string | null): string | null {
  if (referrer === null) return null;
  let url: URL;
  try {
    url = new URL(referrer);
  } catch {
    return null;
  }
  // Special schemes are lower-cased by the parser, others are not; `example.com.` is `example.com`.
  const host = url.hostname.toLowerCase().replace(/\.$/, '');
  return host === '' ? null : host;
}
