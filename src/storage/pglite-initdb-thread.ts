/**
 * Creates a new PGlite data directory, then exits. PGlite runs initdb as a WASM instance of
 * its own whose memory (about 450 MB) stays referenced for as long as the PGlite that ran it,
 * and garbage collection does not return it; a thread that ends takes it along.
 */
import { workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

const lite = await PGlite.create(workerData as string);
await lite.close();
