import { keys } from '../keys.js';
import { queryAll, type MetadataStore } from '../ports/metadata-store.js';
import type { ContainerService } from './containers.js';
import { expiryItemOp, isExpired } from './expiry.js';
import type { ContainerRecord, VolumeRecord } from './records.js';
import type { VolumeService } from './volumes.js';

/**
 * Carries out expiries (expiry.ts): removes each tree whose time has come, through the same
 * transaction a removal takes, and only if its expiry is still the one read, so a write that
 * pushed it back wins. A tree whose expiry moved later gets its expiry item again for the new
 * time. Run by the reclaimer when DynamoDB's TTL deletes an expiry item, and by the sweep.
 */
export class Expirations {
  constructor(
    private readonly meta: MetadataStore,
    private readonly containers: ContainerService,
    private readonly volumes: VolumeService,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Every tree of the tenant whose expiry has passed. Answers how many went. */
  async expireDue(tenant: string): Promise<number> {
    const now = this.clock();
    let gone = 0;
    for (const item of await queryAll(this.meta, keys.expiries(tenant))) {
      if ((item.attrs.at as number) > now) continue;
      if (await this.expire(tenant, item.sk, item.attrs.name as string)) gone++;
    }
    return gone;
  }

  /**
   * The tree an expiry item names (`owner`: `c:<container id>` or `v:<volume uid>`, and its
   * `name`, as the item or a TTL deletion of it reports them): removed if it has expired, its
   * item put back if its expiry moved later. Does nothing for a tree that is gone. Answers
   * whether it went.
   */
  async expire(tenant: string, owner: string, name: string): Promise<boolean> {
    const now = this.clock();
    if (owner.startsWith('c:')) {
      const record = (await this.meta.get(keys.container(tenant, owner.slice(2))))?.attrs as unknown as ContainerRecord | undefined;
      if (!record || record.expires === undefined) return false;
      if (isExpired(record, now)) return this.containers.expire(tenant, record);
      await this.rearm(tenant, owner, record.expires, record.name);
      return false;
    }
    const record = (await this.meta.get(keys.volume(tenant, name)))?.attrs as unknown as VolumeRecord | undefined;
    if (!record || record.uid !== owner.slice(2) || record.expires === undefined) return false;
    // A volume in use waits for its last container, whose removal takes it along.
    if (isExpired(record, now)) return this.volumes.expire(tenant, record);
    await this.rearm(tenant, owner, record.expires, record.name);
    return false;
  }

  private async rearm(tenant: string, owner: string, expires: number, name: string): Promise<void> {
    await this.meta.transact([expiryItemOp(tenant, owner, expires, name)]);
  }
}
