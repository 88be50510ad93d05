import { createHmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerArchive } from '../support/images.js';
import { startServer, type RunningServer } from '../support/local-server.js';

/**
 * The local server delivers its events to a webhook as an integrator would receive them: a real
 * HTTP receiver that checks each signature itself, refuses the first delivery (so a retry must
 * follow, with the same event id), and sees a restart resume after the last acknowledged event.
 */
const SECRET = 'a-webhook-secret-of-some-length';

interface Delivery {
  readonly id: string;
  readonly type: string;
  readonly status: number;
  readonly signed: boolean;
  readonly body: { id: string; type: string; tenant: string; detail: Record<string, unknown> };
}

let receiver: Server;
let receiverUrl: string;
const deliveries: Delivery[] = [];
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strata-webhooks-'));
  receiver = createServer((request, response) => {
    let raw = '';
    request.on('data', (chunk) => (raw += chunk));
    request.on('end', () => {
      const timestamp = String(request.headers['x-strata-timestamp']);
      const expected = `sha256=${createHmac('sha256', SECRET).update(`${timestamp}.${raw}`).digest('hex')}`;
      const status = deliveries.length === 0 ? 500 : 204;
      deliveries.push({
        id: String(request.headers['x-strata-event-id']),
        type: String(request.headers['x-strata-event-type']),
        status,
        signed: request.headers['x-strata-signature'] === expected,
        body: JSON.parse(raw),
      });
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const address = receiver.address() as { port: number };
  receiverUrl = `http://127.0.0.1:${address.port}/hook`;
  await writeFile(join(work, 'webhooks.json'), JSON.stringify({ webhooks: [{ url: receiverUrl, secret: SECRET, tenant: 'local' }] }));
});
afterAll(async () => {
  await new Promise((resolve) => receiver?.close(resolve));
  if (work) await rm(work, { recursive: true, force: true });
});

async function until(done: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(deliveries.map((d) => [d.type, d.status]))}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const accepted = () => deliveries.filter((d) => d.status < 300);

describe('webhooks of the local server', () => {
  it('delivers every event signed, in order, retrying a refused one with the same id, and resumes after a restart', async () => {
    const dataDir = join(work, 'data');
    const env = { STRATA_WEBHOOKS_FILE: join(work, 'webhooks.json'), STRATA_DATA_DIR: dataDir };
    let server: RunningServer = await startServer(env, dataDir);
    try {
      const { archive, imageId } = await dockerArchive([[{ path: 'a', content: 'a' }]], { tags: ['hooked:1'] });
      expect((await fetch(`${server.url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive) })).status).toBe(201);
      const created = await fetch(`${server.url}/v1/containers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'hooked:1', name: 'hooked' }) });
      const container = ((await created.json()) as { id: string }).id;
      expect((await fetch(`${server.url}/v1/containers/hooked`, { method: 'DELETE' })).status).toBe(204);

      await until(() => accepted().length >= 3, 'three accepted deliveries');
      expect(deliveries[0]).toMatchObject({ status: 500, type: 'image.loaded' });
      expect(deliveries[1].id).toBe(deliveries[0].id);
      expect(accepted().map((d) => [d.type, d.body.detail.container ?? d.body.detail.image])).toEqual([
        ['image.loaded', imageId],
        ['container.created', container],
        ['container.removed', container],
      ]);
      expect(deliveries.every((d) => d.signed && d.body.tenant === 'local' && d.body.id === d.id)).toBe(true);

      // The feed serves the same events, with the same ids.
      const feed = (await (await fetch(`${server.url}/v1/events`)).json()) as { events: { id: string }[] };
      expect(feed.events.map((e) => e.id)).toEqual(accepted().map((d) => d.id));

      await server.stop();
      server = await startServer(env, dataDir);
      expect((await fetch(`${server.url}/v1/volumes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'after-restart' }) })).status).toBe(201);
      await until(() => accepted().length >= 4, 'the delivery after the restart');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(accepted().map((d) => d.type)).toEqual(['image.loaded', 'container.created', 'container.removed', 'volume.created']);
    } finally {
      await server.stop();
    }
  }, 120_000);

  it('refuses to start with a webhook file it cannot use', async () => {
    await writeFile(join(work, 'bad.json'), JSON.stringify({ webhooks: [{ url: 'ftp://nowhere', secret: SECRET }] }));
    await expect(startServer({ STRATA_WEBHOOKS_FILE: join(work, 'bad.json') })).rejects.toThrow(/url must be an http\(s\) URL/);
  });
});
