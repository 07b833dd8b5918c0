/** Tiny server-rendered pages for people who follow a short link in a browser. */

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char);
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)} · Shunt</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2328}
h1{font-size:1.5rem}.muted{color:#59636e}.dest{word-break:break-all;font-family:ui-monospace,monospace}
.qr svg{width:12rem;height:12rem}.error{color:#d1242f}a.button{display:inline-block;padding:.5rem 1rem;background:#0969da;color:#fff;border-radius:6px;text-decoration:none}
</style>
</head>
<body>
${body}
</body>
</html>
`;
}

export function notFoundPage(): string {
  return page('Link not found', '<h1>Link not found</h1><p class="muted">This short link does not exist. Check the address for typos.</p>');
}

export function tooManyNotFoundPage(): string {
  return page('Too many requests', '<h1>Too many requests</h1><p class="muted">Too many unknown short links were requested from your address. Try again later.</p>');
}

export function gonePage(): string {
  return page('Link no longer available', '<h1>Link no longer available</h1><p class="muted">This short link has expired, reached its visit limit or was disabled.</p>');
}

/** No script, inline or not: the form posts to the page's own address. */
export function passwordPage(wrongGuess: boolean): string {
  const notice = wrongGuess
    ? '<p class="error" role="alert">That password is not right. Try again.</p>'
    : '<p class="muted">This short link is protected by a password.</p>';
  return page(
    'Password required',
    `<h1>Password required</h1>
${notice}
<form method="post">
<label for="password">Password</label>
<input id="password" name="password" type="password" required maxlength="1024" autocomplete="current-password" autofocus>
<button type="submit">Continue</button>
</form>`,
  );
}

export function tooManyPasswordsPage(): string {
  return page('Too many attempts', '<h1>Too many attempts</h1><p class="muted">Too many wrong passwords were tried for this link or from your address. Try again later.</p>');
}

export function homePage(): string {
  return page('Shunt', '<h1>Shunt</h1><p>URL shortener with click analytics.</p><p><a href="/api/v1/openapi.json">API reference (OpenAPI)</a></p>');
}

export interface PreviewDetails {
  shortUrl: string;
  /** null for a password-protected link: the preview must not reveal where it leads. */
  destination: string | null;
  title: string | null;
  qrSvg: string;
}

function destinationPart(shortUrl: string, destination: string | null): string {
  if (destination === null) {
    return `<p class="muted">${escapeHtml(shortUrl)} is protected by a password.</p>
<p><a class="button" href="${escapeHtml(shortUrl)}" rel="nofollow">Continue</a></p>`;
  }
  return `<p class="muted">${escapeHtml(shortUrl)} leads to:</p>
<p class="dest">${escapeHtml(destination)}</p>
<p><a class="button" href="${escapeHtml(destination)}" rel="noopener noreferrer nofollow">Continue</a></p>`;
}

export function previewPage(details: PreviewDetails): string {
  const title = details.title ?? 'Link preview';
  return page(
    title,
    `<h1>${escapeHtml(title)}</h1>
${destinationPart(details.shortUrl, details.destination)}
<div class="qr">${details.qrSvg}</div>`,
  );
}
