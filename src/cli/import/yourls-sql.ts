/**
 * YOURLS's links from a SQL dump (mysqldump or phpMyAdmin) of its `yourls_url` table:
 * `INSERT INTO \`yourls_url\` [(columns)] VALUES (...),(...);`. Other statements and tables
 * are passed over. The dump is read one statement at a time, so memory follows the longest
 * statement (mysqldump keeps them near its 1 MB net buffer), not the file.
 */
import type { Readable } from 'node:stream';
import { yourlsRecord } from './csv-formats.js';
import type { SourceItem } from './source-record.js';

// The table is `<prefix>url`; YOURLS_DB_PREFIX defaults to `yourls_`.
const INSERT = /^INSERT\s+(?:IGNORE\s+)?INTO\s+[`"]?(\w*url)[`"]?\s*(?:\(([^)]*)\))?\s*VALUES\s*/i;
const YOURLS_COLUMNS = ['keyword', 'url', 'title', 'timestamp', 'ip', 'clicks'];
// A statement longer than this is not a dump YOURLS or mysqldump wrote.
const MAX_STATEMENT_CHARS = 64 * 1024 * 1024;

interface Statement {
  line: number;
  text: string;
}

/** Splits SQL text into statements at `;` outside quotes and comments. */
class StatementSplitter {
  #current = '';
  #startLine = 1;
  #line = 1;
  #quote: string | null = null;
  #escaped = false;
  #comment: 'line' | 'block' | null = null;
  #previous = '';

  feed(chunk: string): Statement[] {
    const done: Statement[] = [];
    for (const char of chunk) {
      const previous = this.#previous;
      this.#previous = char;
      if (char === '\n') this.#line += 1;
      if (this.#comment === 'line') {
        if (char === '\n') this.#comment = null;
        continue;
      }
      if (this.#comment === 'block') {
        if (previous === '*' && char === '/') {
          this.#comment = null;
          this.#previous = '';
        }
        continue;
      }
      if (this.#quote !== null) {
        this.#current += char;
        if (this.#escaped) this.#escaped = false;
        else if (char === '\\') this.#escaped = true;
        else if (char === this.#quote) this.#quote = null;
        continue;
      }
      if (char === '-' && previous === '-' && this.#current.endsWith('-')) {
        this.#current = this.#current.slice(0, -1);
        this.#comment = 'line';
        continue;
      }
      if (char === '#' ) {
        this.#comment = 'line';
        continue;
      }
      if (char === '*' && previous === '/' && this.#current.endsWith('/')) {
        this.#current = this.#current.slice(0, -1);
        this.#comment = 'block';
        this.#previous = '';
        continue;
      }
      if (char === ';') {
        if (this.#current.trim() !== '') done.push({ line: this.#startLine, text: this.#current.trim() });
        this.#current = '';
        continue;
      }
      if (this.#current.trim() === '' && /\s/.test(char)) {
        this.#startLine = this.#line;
        continue;
      }
      if (this.#current === '') this.#startLine = this.#line;
      if (char === "'" || char === '"' || char === '`') this.#quote = char;
      this.#current += char;
      if (this.#current.length > MAX_STATEMENT_CHARS) throw new Error(`SQL statement at line ${this.#startLine} is longer than ${MAX_STATEMENT_CHARS} characters`);
    }
    return done;
  }

  end(): Statement[] {
    const rest = this.#current.trim();
    this.#current = '';
    return rest === '' ? [] : [{ line: this.#startLine, text: rest }];
  }
}

type SqlValue = string | null;

/** The tuples of `(...),(...)`, each with the line it starts on (relative to the text). */
function parseTuples(text: string): { offsetLines: number; values: SqlValue[] }[] | string {
  const tuples: { offsetLines: number; values: SqlValue[] }[] = [];
  let i = 0;
  let lines = 0;
  const skipSpace = (): void => {
    while (i < text.length && /\s/.test(text[i] ?? '')) {
      if (text[i] === '\n') lines += 1;
      i += 1;
    }
  };
  for (;;) {
    skipSpace();
    if (text[i] !== '(') return `expected "(" at character ${i} of the VALUES list`;
    const tupleLines = lines;
    i += 1;
    const values: SqlValue[] = [];
    for (;;) {
      skipSpace();
      const char = text[i];
      if (char === "'" || char === '"') {
        let value = '';
        i += 1;
        for (;;) {
          const c = text[i];
          if (c === undefined) return 'unterminated string';
          if (c === '\n') lines += 1;
          if (c === '\\') {
            const next = text[i + 1] ?? '';
            value += ({ n: '\n', r: '\r', t: '\t', '0': '\0', Z: '\x1a' } as Record<string, string>)[next] ?? next;
            i += 2;
          } else if (c === char && text[i + 1] === char) {
            value += char;
            i += 2;
          } else if (c === char) {
            i += 1;
            break;
          } else {
            value += c;
            i += 1;
          }
        }
        values.push(value);
      } else {
        const match = /^[^,)\s]+/.exec(text.slice(i, i + 64));
        if (match === null) return `expected a value at character ${i}`;
        values.push(match[0].toUpperCase() === 'NULL' ? null : match[0]);
        i += match[0].length;
      }
      skipSpace();
      if (text[i] === ',') {
        i += 1;
        continue;
      }
      if (text[i] === ')') {
        i += 1;
        break;
      }
      return `expected "," or ")" at character ${i}`;
    }
    tuples.push({ offsetLines: tupleLines, values });
    skipSpace();
    if (i >= text.length) return tuples;
    if (text[i] !== ',') return `expected "," between tuples at character ${i}`;
    i += 1;
  }
}

export async function* yourlsSqlRecords(input: Readable): AsyncGenerator<SourceItem> {
  const splitter = new StatementSplitter();
  input.setEncoding('utf8');
  const read = async function* (): AsyncGenerator<Statement> {
    for await (const chunk of input as AsyncIterable<string>) yield* splitter.feed(chunk);
    yield* splitter.end();
  };
  for await (const statement of read()) {
    const match = INSERT.exec(statement.text);
    if (match === null) continue;
    const columns = match[2] === undefined ? YOURLS_COLUMNS : match[2].split(',').map((name) => name.trim().replace(/^[`"]|[`"]$/g, '').toLowerCase());
    const tuples = parseTuples(statement.text.slice(match[0].length));
    if (typeof tuples === 'string') {
      yield { kind: 'problem', line: statement.line, reason: `unreadable INSERT statement: ${tuples}`, raw: statement.text.slice(0, 200) };
      continue;
    }
    const at = (values: SqlValue[], name: string): string | undefined => {
      const index = columns.indexOf(name);
      return index < 0 ? undefined : (values[index] ?? undefined);
    };
    const headLines = match[0].split('\n').length - 1;
    for (const tuple of tuples) {
      const line = statement.line + headLines + tuple.offsetLines;
      const record = yourlsRecord(line, {
        keyword: at(tuple.values, 'keyword'),
        url: at(tuple.values, 'url'),
        title: at(tuple.values, 'title'),
        timestamp: at(tuple.values, 'timestamp'),
        clicks: at(tuple.values, 'clicks'),
      });
      if (typeof record === 'string') yield { kind: 'problem', line, reason: record, raw: JSON.stringify(tuple.values) };
      else yield record;
    }
  }
}
