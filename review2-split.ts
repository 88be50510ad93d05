import { loadImage, localEngine, text } from './test/support/engine.ts';
import { compareNames } from './shared/paths.ts';
const T = 'acme';
const { engine, meta, cleanup } = await localEngine();
try {
  const names: string[] = [];
  for (let i = 0; i < 2600; i++) names.push(`f${String(i).padStart(5, '0')}${i % 3 === 0 ? '\u{1F600}' : i % 3 === 1 ? '\uFFFD' : 'z'}`);
  names.push('"q"', 'back\\slash', 'nl\nx', '\u{1F600}', '\uFFFD', 'a');
  await loadImage(engine, T, [names.map((n) => ({ path: `big/${n}`, content: n }))], ['img:1']);
  const img = { kind: 'image' as const, ref: 'img:1' };
  const c = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'img:1' })).id };
  const mine = ['\uFFFE', '\u{1F601}', 'b', 'f00001\uFFFD'];
  for (const n of mine) await engine.files.writeFile(T, c, `/big/${n}`, Buffer.from('mine'));
  // list with pagination
  const all: string[] = [];
  let cursor: string | undefined;
  do { const page = await engine.files.list(T, c, '/big', { cursor, limit: 333 }); all.push(...page.entries.map((e) => e.name)); cursor = page.cursor; } while (cursor);
  const expected = [...new Set([...names, ...mine])].sort(compareNames);
  console.log('count', all.length, 'expected', expected.length, 'equal', JSON.stringify(all) === JSON.stringify(expected));
  const sorted = [...all].sort(compareNames);
  console.log('sorted', JSON.stringify(all) === JSON.stringify(sorted));
  console.log('read split child', await text((await engine.files.read(T, img, '/big/nl\nx')).body), await text((await engine.files.read(T, c, '/big/f00001\uFFFD')).body));
  // is it split?
  for (const [pk, part] of (meta as any).partitions) if (pk.includes("#p#") && pk.endsWith("/big")) console.log(pk.slice(0,40), [...part.items.values()].map((a: any) => a.split ? "split" : "packed " + a.c.length));
} finally { await cleanup(); }
