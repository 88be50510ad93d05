import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import type { FaultMode } from '../support/fault-injection.js';
import { runPositions, scenarios, type World } from '../support/fault-positions.js';

/**
 * Every storage call of each operation is made to fail in turn (once, or as a crash before or
 * after it takes effect), over the in-process stores; the integration tests repeat a part of it
 * on DynamoDB Local and Ceph RGW. See test/support/fault-positions.ts.
 */
const roots: string[] = [];
afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function world(): Promise<World> {
  const root = await mkdtemp(join(tmpdir(), 'strata-fault-'));
  roots.push(root);
  return { meta: new MemoryMetadataStore(), blobs: new FsBlobStore(root, async (key) => key), tenant: 'acme' };
}

const modes: FaultMode[] = ['fail', 'crash', 'crash-after'];
const totals = { positions: 0, lost: 0, problems: 0 };

describe('a fault at every storage call leaves a consistent store', () => {
  for (const scenario of scenarios) {
    it(scenario.name, async () => {
      const report = await runPositions(scenario, world, modes);
      totals.positions += report.positions;
      totals.lost += report.lost;
      totals.problems += report.problems;
      expect(report.positions).toBeGreaterThan(0);
      expect(report.failures).toEqual([]);
    });
  }

  it('covered every position of every operation', () => {
    console.log(`fault positions injected: ${totals.positions}, lost writes: ${totals.lost}, fsck problems: ${totals.problems}`);
    expect(totals.positions).toBeGreaterThan(100);
  });
});
