/**
 * The generated file the import benchmarks read. It mixes the cases import meets: a third of
 * the rows keep an alias, the rest get generated codes; all have a title, tags, a creation
 * date and a visit count.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

export async function writeImportFile(path: string, lines: number): Promise<void> {
  const out = createWriteStream(path);
  const write = async (text: string): Promise<void> => {
    if (!out.write(text)) await once(out, 'drain');
  };
  await write('url,alias,title,tags,expiresAt,createdAt,clicks\n');
  const created = Date.parse('2020-01-01T00:00:00Z');
  for (let i = 0; i < lines; i += 1) {
    const alias = i % 3 === 0 ? `imp-${i.toString(36)}` : '';
    await write(`https://example.com/articles/${i}?utm_source=import,${alias},Article number ${i},bench|batch-${i % 50},,${new Date(created + i * 1000).toISOString()},${i % 1000}\n`);
  }
  out.end();
  await once(out, 'finish');
}
