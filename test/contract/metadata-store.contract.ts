/**
 * The behaviour every MetadataStore must show, run against each implementation (like lakeFS's
 * kvtest). Every test works in partitions of its own, so implementations may share one table.
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { PreconditionFailedError, TransactionConditionError } from '../../shared/errors.js';
import { itemId, MAX_TRANSACTION_OPS, type Item, type ItemKey, type MetadataStore, type WriteOp } from '../../shared/ports/metadata-store.js';

export function metadataStoreContract(name: string, makeStore: () => Promise<MetadataStore>): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let store: MetadataStore;

    beforeAll(async () => {
      store = await makeStore();
    });

    /** A partition key no other test uses. */
    const newPk = (label = 'p') => `${label}-${randomUUID()}`;

    const put = (pk: string, sk: string, attrs: Item['attrs'] = {}) => store.transact([{ op: 'put', item: { pk, sk, attrs } }]);

    /** Asserts that the transaction fails its conditions on exactly `failedIndexes`. */
    async function expectConditionFailure(ops: readonly WriteOp[], failedIndexes: number[]): Promise<void> {
      const error = await store.transact(ops).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(TransactionConditionError);
      expect(error).toBeInstanceOf(PreconditionFailedError);
      expect((error as TransactionConditionError).status).toBe(412);
      expect((error as TransactionConditionError).failedIndexes).toEqual(failedIndexes);
    }

    /** Every item of a partition, walking pages of `limit`. Also checks each page respects the limit. */
    async function walk(pk: string, options: { prefix?: string; limit: number; after?: string }): Promise<string[]> {
      const seen: string[] = [];
      let after = options.after;
      for (let pages = 0; pages < 1_000; pages++) {
        const page = await store.query(pk, { prefix: options.prefix, after, limit: options.limit });
        expect(page.items.length).toBeLessThanOrEqual(options.limit);
        seen.push(...page.items.map((item) => item.sk));
        if (page.last === undefined) return seen;
        expect(page.last).toBe(page.items.at(-1)?.sk ?? page.last);
        after = page.last;
      }
      throw new Error('paging did not end');
    }

    describe('get and put', () => {
      it('round-trips nested attributes of every JSON-like type', async () => {
        const pk = newPk();
        const attrs = {
          text: 'hello',
          empty: '',
          integer: 42,
          negative: -7,
          fraction: 0.1,
          tiny: 1e-7,
          largestSafe: Number.MAX_SAFE_INTEGER,
          yes: true,
          no: false,
          nothing: null,
          list: [1, 'two', false, null, [3], { four: 4 }],
          emptyList: [],
          emptyObject: {},
          nested: { deeper: { deepest: ['x', { y: 'z' }] }, 'dotted.name': 1 },
        };
        await put(pk, 'item', attrs);
        expect(await store.get({ pk, sk: 'item' })).toEqual({ pk, sk: 'item', attrs });
      });

      it('returns undefined for a missing item', async () => {
        expect(await store.get({ pk: newPk(), sk: 'missing' })).toBeUndefined();
      });

      it('replaces the whole item on put rather than merging', async () => {
        const pk = newPk();
        await put(pk, 'item', { a: 1, b: 2 });
        await put(pk, 'item', { c: 3 });
        expect((await store.get({ pk, sk: 'item' }))?.attrs).toEqual({ c: 3 });
      });

      it('accepts arbitrary attribute names', async () => {
        const pk = newPk();
        const attrs = { 'a.b': 1, '#x': 2, ':y': 3, 'with space': 4, 'ü/ñ': 5, 'name[0]': 6 };
        await put(pk, 'item', attrs);
        expect((await store.get({ pk, sk: 'item' }))?.attrs).toEqual(attrs);
      });

      it('does not let callers change stored state through the objects they pass or receive', async () => {
        const pk = newPk();
        const attrs = { list: [1, 2], nested: { value: 'original' } };
        await put(pk, 'item', attrs);
        attrs.list.push(3);
        attrs.nested.value = 'changed by the writer';

        const read = await store.get({ pk, sk: 'item' });
        (read!.attrs.nested as { value: string }).value = 'changed by a reader';
        const queried = await store.query(pk);
        (queried.items[0]!.attrs.list as number[]).push(4);

        expect((await store.get({ pk, sk: 'item' }))?.attrs).toEqual({ list: [1, 2], nested: { value: 'original' } });
      });
    });

    describe('getMany', () => {
      it('reads 250 keys (more than one DynamoDB batch) with missing ones and duplicates', async () => {
        const pk = newPk();
        const present = Array.from({ length: 200 }, (_, index) => ({ pk, sk: `item-${String(index).padStart(3, '0')}` }));
        await store.writeMany(present.map((key, index) => ({ op: 'put', item: { ...key, attrs: { index } } })));
        const missing = Array.from({ length: 40 }, (_, index) => ({ pk, sk: `missing-${index}` }));
        const otherPartition = { pk: newPk(), sk: 'item-000' };
        const duplicates = present.slice(0, 9);
        const keys: ItemKey[] = [...present, ...missing, otherPartition, ...duplicates];
        expect(keys).toHaveLength(250);

        const found = await store.getMany(keys);

        expect(found.size).toBe(200);
        present.forEach((key, index) => {
          expect(found.get(itemId(key))).toEqual({ ...key, attrs: { index } });
        });
        expect(found.has(itemId(missing[0]!))).toBe(false);
        expect(found.has(itemId(otherPartition))).toBe(false);
      });

      it('returns an empty map for no keys', async () => {
        expect((await store.getMany([])).size).toBe(0);
      });
    });

    describe('query', () => {
      // In UTF-8 byte order, as DynamoDB compares strings: '-' < '/' < '0', 'Ａ' (U+FF21) < '😀' (U+1F600)
      // even though JavaScript's UTF-16 comparison puts the emoji first.
      const sortedKeys = ['A', 'a', 'a-b', 'a/', 'a/b', 'a/b/c', 'a0', 'b', 'é', 'Ａ', '😀'];

      async function seedSorted(): Promise<string> {
        const pk = newPk();
        const shuffled = [...sortedKeys].reverse();
        shuffled.push(shuffled.shift()!);
        await store.writeMany(shuffled.map((sk) => ({ op: 'put', item: { pk, sk, attrs: { name: sk } } })));
        return pk;
      }

      it('returns items in ascending byte order of their sort keys', async () => {
        const pk = await seedSorted();
        const page = await store.query(pk);
        expect(page.items.map((item) => item.sk)).toEqual(sortedKeys);
        expect(page.items[0]).toEqual({ pk, sk: 'A', attrs: { name: 'A' } });
        expect(page.last).toBeUndefined();
      });

      it('filters by prefix', async () => {
        const pk = await seedSorted();
        expect((await store.query(pk, { prefix: 'a/' })).items.map((item) => item.sk)).toEqual(['a/', 'a/b', 'a/b/c']);
        expect((await store.query(pk, { prefix: 'a' })).items.map((item) => item.sk)).toEqual(['a', 'a-b', 'a/', 'a/b', 'a/b/c', 'a0']);
        expect((await store.query(pk, { prefix: 'zzz' })).items).toEqual([]);
      });

      it('starts after an exclusive sort key, whether or not it exists', async () => {
        const pk = await seedSorted();
        expect((await store.query(pk, { after: 'a0' })).items.map((item) => item.sk)).toEqual(['b', 'é', 'Ａ', '😀']);
        expect((await store.query(pk, { after: 'a1' })).items.map((item) => item.sk)).toEqual(['b', 'é', 'Ａ', '😀']);
        expect((await store.query(pk, { after: 'Ａ' })).items.map((item) => item.sk)).toEqual(['😀']);
        expect((await store.query(pk, { after: '😀' })).items).toEqual([]);
      });

      it('combines prefix and after, with after inside, before and beyond the prefix range', async () => {
        const pk = await seedSorted();
        const sks = async (after: string) => (await store.query(pk, { prefix: 'a/', after })).items.map((item) => item.sk);
        expect(await sks('a/')).toEqual(['a/b', 'a/b/c']);
        expect(await sks('a/a')).toEqual(['a/b', 'a/b/c']);
        expect(await sks('a/b/c')).toEqual([]);
        expect(await sks('a-b')).toEqual(['a/', 'a/b', 'a/b/c']);
        expect(await sks('a')).toEqual(['a/', 'a/b', 'a/b/c']);
        expect(await sks('a0')).toEqual([]);
        expect(await sks('b')).toEqual([]);
      });

      it('pages with limit and last, visiting every item exactly once in order', async () => {
        const pk = newPk();
        const all = Array.from({ length: 57 }, (_, index) => `key/${String(index).padStart(2, '0')}`);
        const others = ['aaa', 'zzz', 'key', 'kez/1'];
        await store.writeMany([...all, ...others].map((sk) => ({ op: 'put', item: { pk, sk, attrs: {} } })));

        expect(await walk(pk, { prefix: 'key/', limit: 10 })).toEqual(all);
        expect(await walk(pk, { prefix: 'key/', limit: 1 })).toEqual(all);
        expect(await walk(pk, { prefix: 'key/', limit: 57 })).toEqual(all);
        expect(await walk(pk, { prefix: 'key/', limit: 19, after: 'key/09' })).toEqual(all.slice(10));
        expect(await walk(pk, { limit: 7 })).toEqual(['aaa', 'key', ...all, 'kez/1', 'zzz']);
      });

      it('returns a cursor when a page is full and none when the partition is exhausted', async () => {
        const pk = newPk();
        await store.writeMany(['1', '2', '3'].map((sk) => ({ op: 'put', item: { pk, sk, attrs: {} } })));
        const first = await store.query(pk, { limit: 2 });
        expect(first.items.map((item) => item.sk)).toEqual(['1', '2']);
        expect(first.last).toBe('2');
        const second = await store.query(pk, { limit: 2, after: first.last });
        expect(second.items.map((item) => item.sk)).toEqual(['3']);
        expect(second.last).toBeUndefined();
      });

      it('last gives the item with the greatest sort key in byte order, and nothing for an empty partition', async () => {
        const pk = await seedSorted();
        expect(await store.last(pk)).toEqual({ pk, sk: '😀', attrs: { name: '😀' } });
        await store.transact([{ op: 'delete', key: { pk, sk: '😀' } }]);
        expect((await store.last(pk))?.sk).toBe('Ａ');
        expect(await store.last(newPk())).toBeUndefined();
      });

      it('returns an empty page for an empty partition', async () => {
        expect(await store.query(newPk())).toEqual({ items: [] });
      });

      it('keeps partitions apart, even when one key is a prefix of another', async () => {
        const base = newPk();
        await put(`${base}a`, 'x', { in: 'a' });
        await put(`${base}ab`, 'x', { in: 'ab' });
        await put(`${base}ab`, 'y', { in: 'ab' });
        expect((await store.query(`${base}a`)).items).toEqual([{ pk: `${base}a`, sk: 'x', attrs: { in: 'a' } }]);
        expect((await store.query(`${base}ab`)).items.map((item) => item.sk)).toEqual(['x', 'y']);
        expect(await store.get({ pk: `${base}a`, sk: 'y' })).toBeUndefined();
      });
    });

    describe('transact', () => {
      it('applies all ops together', async () => {
        const pk = newPk();
        await put(pk, 'doomed');
        await store.transact([
          { op: 'put', item: { pk, sk: 'one', attrs: { n: 1 } } },
          { op: 'update', key: { pk, sk: 'two' }, set: { n: 2 } },
          { op: 'delete', key: { pk, sk: 'doomed' } },
        ]);
        expect((await store.query(pk)).items).toEqual([
          { pk, sk: 'one', attrs: { n: 1 } },
          { pk, sk: 'two', attrs: { n: 2 } },
        ]);
      });

      it('applies nothing when the condition of op 3 fails, and names index 2', async () => {
        const pk = newPk();
        await put(pk, 'counter', { count: 1 });
        await put(pk, 'existing', { version: 1 });
        await expectConditionFailure(
          [
            { op: 'put', item: { pk, sk: 'first', attrs: {} } },
            { op: 'update', key: { pk, sk: 'counter' }, add: { count: 1 } },
            { op: 'put', item: { pk, sk: 'existing', attrs: {} }, conditions: [{ kind: 'absent' }] },
          ],
          [2],
        );
        expect(await store.get({ pk, sk: 'first' })).toBeUndefined();
        expect((await store.get({ pk, sk: 'counter' }))?.attrs).toEqual({ count: 1 });
        expect((await store.get({ pk, sk: 'existing' }))?.attrs).toEqual({ version: 1 });
      });

      it('names every op whose conditions failed', async () => {
        const pk = newPk();
        await put(pk, 'a');
        await put(pk, 'c');
        await expectConditionFailure(
          [
            { op: 'put', item: { pk, sk: 'a', attrs: {} }, conditions: [{ kind: 'absent' }] },
            { op: 'put', item: { pk, sk: 'b', attrs: {} }, conditions: [{ kind: 'absent' }] },
            { op: 'put', item: { pk, sk: 'c', attrs: {} }, conditions: [{ kind: 'absent' }] },
          ],
          [0, 2],
        );
        expect(await store.get({ pk, sk: 'b' })).toBeUndefined();
      });

      it('does nothing for an empty list of ops', async () => {
        await expect(store.transact([])).resolves.toBeUndefined();
      });

      describe('misuse is refused with nothing applied', () => {
        /** The transaction must fail with a plain error (not a condition failure) and leave `marker` unwritten. */
        async function expectRefused(pk: string, op: WriteOp): Promise<void> {
          const error = await store.transact([{ op: 'put', item: { pk, sk: 'marker', attrs: {} } }, op]).then(
            () => undefined,
            (caught: unknown) => caught,
          );
          expect(error).toBeInstanceOf(Error);
          expect(error).not.toBeInstanceOf(PreconditionFailedError);
          expect(await store.get({ pk, sk: 'marker' })).toBeUndefined();
        }

        it('two ops on one item', async () => {
          const pk = newPk();
          await expectRefused(pk, { op: 'delete', key: { pk, sk: 'marker' } });
        });

        it('more than MAX_TRANSACTION_OPS ops', async () => {
          const pk = newPk();
          const ops: WriteOp[] = Array.from({ length: MAX_TRANSACTION_OPS + 1 }, (_, index) => ({
            op: 'put',
            item: { pk, sk: `item-${index}`, attrs: {} },
          }));
          await expect(store.transact(ops)).rejects.toThrow();
          expect((await store.query(pk)).items).toEqual([]);
        });

        it('an update with nothing to do', async () => {
          const pk = newPk();
          await expectRefused(pk, { op: 'update', key: { pk, sk: 'item' } });
        });

        it('adding to a field that is not a number', async () => {
          const pk = newPk();
          await put(pk, 'item', { name: 'text' });
          await expectRefused(pk, { op: 'update', key: { pk, sk: 'item' }, add: { name: 1 } });
          expect((await store.get({ pk, sk: 'item' }))?.attrs).toEqual({ name: 'text' });
        });
      });

      describe('conditions', () => {
        /** Runs a check op with one condition against the item `attrs` (or no item) and reports whether it held. */
        async function holds(attrs: Item['attrs'] | undefined, condition: NonNullable<WriteOp['conditions']>[number]) {
          const pk = newPk();
          if (attrs !== undefined) await put(pk, 'item', attrs);
          // A marker write shows whether the transaction went through.
          const ops: WriteOp[] = [
            { op: 'put', item: { pk, sk: 'marker', attrs: {} } },
            { op: 'check', key: { pk, sk: 'item' }, conditions: [condition] },
          ];
          try {
            await store.transact(ops);
          } catch (error) {
            expect(error).toBeInstanceOf(TransactionConditionError);
            expect((error as TransactionConditionError).failedIndexes).toEqual([1]);
            expect(await store.get({ pk, sk: 'marker' })).toBeUndefined();
            return false;
          }
          expect(await store.get({ pk, sk: 'marker' })).toBeDefined();
          return true;
        }

        it('absent holds for a missing item and fails for an existing one', async () => {
          expect(await holds(undefined, { kind: 'absent' })).toBe(true);
          expect(await holds({}, { kind: 'absent' })).toBe(false);
        });

        it('present holds for an existing item (even without attributes) and fails for a missing one', async () => {
          expect(await holds({}, { kind: 'present' })).toBe(true);
          expect(await holds({ a: 1 }, { kind: 'present' })).toBe(true);
          expect(await holds(undefined, { kind: 'present' })).toBe(false);
        });

        it('equals holds for the same value and type only', async () => {
          expect(await holds({ etag: 'abc' }, { kind: 'equals', field: 'etag', value: 'abc' })).toBe(true);
          expect(await holds({ version: 3 }, { kind: 'equals', field: 'version', value: 3 })).toBe(true);
          expect(await holds({ sealed: true }, { kind: 'equals', field: 'sealed', value: true })).toBe(true);
          expect(await holds({ 'odd.name': 'x' }, { kind: 'equals', field: 'odd.name', value: 'x' })).toBe(true);

          expect(await holds({ etag: 'abc' }, { kind: 'equals', field: 'etag', value: 'abd' })).toBe(false);
          expect(await holds({ version: 3 }, { kind: 'equals', field: 'version', value: '3' })).toBe(false);
          expect(await holds({ sealed: false }, { kind: 'equals', field: 'sealed', value: true })).toBe(false);
          expect(await holds({ other: 1 }, { kind: 'equals', field: 'version', value: 1 })).toBe(false);
          expect(await holds(undefined, { kind: 'equals', field: 'version', value: 1 })).toBe(false);
        });

        it('atLeast holds for an equal or greater number and fails otherwise', async () => {
          expect(await holds({ free: 10 }, { kind: 'atLeast', field: 'free', value: 10 })).toBe(true);
          expect(await holds({ free: 10.5 }, { kind: 'atLeast', field: 'free', value: 10 })).toBe(true);
          expect(await holds({ free: -1 }, { kind: 'atLeast', field: 'free', value: -2 })).toBe(true);

          expect(await holds({ free: 9 }, { kind: 'atLeast', field: 'free', value: 10 })).toBe(false);
          expect(await holds({ free: '11' }, { kind: 'atLeast', field: 'free', value: 10 })).toBe(false);
          expect(await holds({ other: 11 }, { kind: 'atLeast', field: 'free', value: 10 })).toBe(false);
          expect(await holds(undefined, { kind: 'atLeast', field: 'free', value: 0 })).toBe(false);
        });

        it('lacks holds for a missing attribute or item and fails when the attribute is there', async () => {
          expect(await holds({ other: 1 }, { kind: 'lacks', field: 'sealed' })).toBe(true);
          expect(await holds(undefined, { kind: 'lacks', field: 'sealed' })).toBe(true);
          expect(await holds({ sealed: 0 }, { kind: 'lacks', field: 'sealed' })).toBe(false);
          expect(await holds({ sealed: false }, { kind: 'lacks', field: 'sealed' })).toBe(false);
        });

        it('requires every condition of an op to hold', async () => {
          const all = [{ kind: 'present' }, { kind: 'equals', field: 'state', value: 'open' }, { kind: 'atLeast', field: 'size', value: 5 }] as const;
          const pk = newPk();
          await put(pk, 'item', { state: 'open', size: 5 });
          await store.transact([{ op: 'check', key: { pk, sk: 'item' }, conditions: all }]);
          await put(pk, 'item', { state: 'open', size: 4 });
          await expectConditionFailure([{ op: 'check', key: { pk, sk: 'item' }, conditions: all }], [0]);
        });
      });

      describe('update', () => {
        it('creates a missing item, and add starts counters at 0', async () => {
          const pk = newPk();
          const key = { pk, sk: 'counters' };
          await store.transact([{ op: 'update', key, add: { refs: 1, bytes: 100 } }]);
          expect((await store.get(key))?.attrs).toEqual({ refs: 1, bytes: 100 });
          await store.transact([{ op: 'update', key, add: { refs: 2, bytes: -40, fresh: 0 } }]);
          expect((await store.get(key))?.attrs).toEqual({ refs: 3, bytes: 60, fresh: 0 });
        });

        it('sets and removes attributes, leaving the others alone', async () => {
          const pk = newPk();
          const key = { pk, sk: 'item' };
          await put(pk, 'item', { keep: 'me', drop: 'me', replace: 'old', count: 1 });
          await store.transact([
            {
              op: 'update',
              key,
              set: { replace: { now: ['an', 'object'] }, added: null, 'odd name': true },
              remove: ['drop', 'never-existed'],
              add: { count: 1 },
            },
          ]);
          expect((await store.get(key))?.attrs).toEqual({
            keep: 'me',
            replace: { now: ['an', 'object'] },
            added: null,
            'odd name': true,
            count: 2,
          });
        });

        it('does not create the item when a present condition fails', async () => {
          const pk = newPk();
          await expectConditionFailure([{ op: 'update', key: { pk, sk: 'item' }, set: { a: 1 }, conditions: [{ kind: 'present' }] }], [0]);
          expect(await store.get({ pk, sk: 'item' })).toBeUndefined();
        });

        it('supports optimistic concurrency on a version field', async () => {
          const pk = newPk();
          const key = { pk, sk: 'item' };
          await put(pk, 'item', { version: 1, body: 'v1' });
          const bump = (expected: number, body: string): WriteOp => ({
            op: 'update',
            key,
            set: { body },
            add: { version: 1 },
            conditions: [{ kind: 'equals', field: 'version', value: expected }],
          });
          await store.transact([bump(1, 'v2')]);
          await expectConditionFailure([bump(1, 'lost update')], [0]);
          expect((await store.get(key))?.attrs).toEqual({ version: 2, body: 'v2' });
        });
      });

      describe('check and delete', () => {
        it('a holding check lets the other ops through and writes nothing itself', async () => {
          const pk = newPk();
          await put(pk, 'guard', { open: true });
          await store.transact([
            { op: 'check', key: { pk, sk: 'guard' }, conditions: [{ kind: 'equals', field: 'open', value: true }] },
            { op: 'put', item: { pk, sk: 'guarded', attrs: {} } },
          ]);
          expect(await store.get({ pk, sk: 'guarded' })).toBeDefined();
          expect((await store.get({ pk, sk: 'guard' }))?.attrs).toEqual({ open: true });
        });

        it('a failing check stops the other ops', async () => {
          const pk = newPk();
          await put(pk, 'guard', { open: false });
          await expectConditionFailure(
            [
              { op: 'put', item: { pk, sk: 'guarded', attrs: {} } },
              { op: 'check', key: { pk, sk: 'guard' }, conditions: [{ kind: 'equals', field: 'open', value: true }] },
            ],
            [1],
          );
          expect(await store.get({ pk, sk: 'guarded' })).toBeUndefined();
        });

        it('deletes only when its condition holds', async () => {
          const pk = newPk();
          const key = { pk, sk: 'item' };
          await put(pk, 'item', { refs: 1 });
          await expectConditionFailure([{ op: 'delete', key, conditions: [{ kind: 'equals', field: 'refs', value: 0 }] }], [0]);
          expect(await store.get(key)).toBeDefined();
          await store.transact([{ op: 'delete', key, conditions: [{ kind: 'equals', field: 'refs', value: 1 }] }]);
          expect(await store.get(key)).toBeUndefined();
        });

        it('deleting a missing item without conditions succeeds', async () => {
          await expect(store.transact([{ op: 'delete', key: { pk: newPk(), sk: 'missing' } }])).resolves.toBeUndefined();
        });
      });
    });

    describe('writeMany', () => {
      it('puts 600 items and then deletes them', async () => {
        const pk = newPk();
        const keys = Array.from({ length: 600 }, (_, index) => ({ pk, sk: `item/${String(index).padStart(4, '0')}` }));
        await store.writeMany(keys.map((key, index) => ({ op: 'put', item: { ...key, attrs: { index, tag: 'bulk' } } })));

        expect(await walk(pk, { limit: 250 })).toEqual(keys.map((key) => key.sk));
        expect(await store.get(keys[599]!)).toEqual({ ...keys[599], attrs: { index: 599, tag: 'bulk' } });

        await store.writeMany(keys.map((key) => ({ op: 'delete', key })));
        expect(await store.query(pk)).toEqual({ items: [] });
      });

      it('keeps the last op when one key appears more than once', async () => {
        const pk = newPk();
        await put(pk, 'deleted-last');
        await store.writeMany([
          { op: 'put', item: { pk, sk: 'put-twice', attrs: { n: 1 } } },
          { op: 'put', item: { pk, sk: 'deleted-last', attrs: { n: 1 } } },
          { op: 'put', item: { pk, sk: 'put-twice', attrs: { n: 2 } } },
          { op: 'delete', key: { pk, sk: 'deleted-last' } },
        ]);
        expect((await store.query(pk)).items).toEqual([{ pk, sk: 'put-twice', attrs: { n: 2 } }]);
      });

      it('does nothing for an empty list', async () => {
        await expect(store.writeMany([])).resolves.toBeUndefined();
      });
    });
  });
}
