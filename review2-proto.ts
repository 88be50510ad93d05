import { loadImage, localEngine, text } from './test/support/engine.ts';
const T = 'acme';
const { engine, cleanup } = await localEngine();
try {
  await loadImage(engine, T, [[{ path: 'etc/__proto__', content: 'P' }, { path: 'etc/hosts', content: 'H' }, { path: '__proto__/x', content: 'X' }]], ['img:1']);
  const img = { kind: 'image' as const, ref: 'img:1' };
  console.log('ls /etc:', (await engine.files.list(T, img, '/etc')).entries.map((e) => e.name));
  console.log('ls /:', (await engine.files.list(T, img, '/')).entries.map((e) => e.name));
  for (const p of ['/etc/__proto__', '/__proto__/x']) {
    try { console.log(p, await text((await engine.files.read(T, img, p)).body)); } catch (e) { console.log(p, 'ERR', (e as Error).message); }
  }
  const c = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'img:1' })).id };
  try { console.log('container read', await text((await engine.files.read(T, c, '/etc/__proto__')).body)); } catch (e) { console.log('container read ERR', (e as Error).message); }
} finally { await cleanup(); }
