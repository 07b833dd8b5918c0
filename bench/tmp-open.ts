import { openDatabase } from '../src/storage/database.js';
const t = Date.now();
const db = await openDatabase({ url: undefined, dataDir: 'memory://', poolSize: 1 });
console.log('open', Date.now() - t);
const r = await db.query("select 1::int8 as a, now() as b, '\\x0102'::bytea as c, '{1,2}'::int[] as d, '{\"x\":1}'::jsonb as e, null as f");
console.log(r.rows, r.rowCount, r.command);
try { await db.query('select 1/0'); } catch (e) { console.log('err', (e as any).code, (e as Error).message); }
await db.close();
console.log('closed');
