import { resolve } from 'node:path';
import { localConfig } from '../../shared/config.js';
import { compose } from '../composition.js';
import { openLocalStorage } from './storage.js';

/**
 * `npm run fsck [-- --repair] [-- --tenant T]`: checks the local data (STRATA_DATA_DIR, or the
 * services STRATA_DYNAMO_ENDPOINT and STRATA_S3_ENDPOINT name) for dangling metadata, orphan
 * blobs and wrong size counters, prints one JSON report per tenant, and exits 1 if a problem
 * remains. Stop the local server first when it owns the data folder's DynamoDB Local.
 */
async function main(args: string[]): Promise<number> {
  const repair = args.includes('--repair');
  const tenantAt = args.indexOf('--tenant');
  const config = localConfig();
  const dataDir = resolve(config.dataDir);
  const storage = await openLocalStorage(config, dataDir);
  try {
    const services = compose(storage.effective, { dynamo: storage.documentClient, s3: storage.s3, presigner: async (key) => key });
    const tenants = tenantAt >= 0 ? [args[tenantAt + 1]] : await services.engine.sweeper.tenants();
    let remaining = 0;
    for (const tenant of tenants) {
      const report = await services.engine.fsck.check(tenant, { repair });
      remaining += report.problems.filter((p) => !p.repaired).length;
      console.log(JSON.stringify(report, null, 2));
    }
    return remaining === 0 ? 0 : 1;
  } finally {
    await storage.dynamo?.stop();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`fsck failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  },
);
