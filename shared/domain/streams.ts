/** Small helpers over byte streams, shared by the archive reader and writer. */

export async function readAll(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/** The first non-empty chunk, and the iterator positioned after it. */
export async function peek(body: AsyncIterable<Buffer>): Promise<{ first: Buffer | undefined; rest: AsyncIterator<Buffer> }> {
  const rest = body[Symbol.asyncIterator]();
  for (;;) {
    const next = await rest.next();
    if (next.done) return { first: undefined, rest };
    if (next.value.length > 0) return { first: next.value, rest };
  }
}

export async function collect(first: Buffer | undefined, rest: AsyncIterator<Buffer>): Promise<Buffer> {
  const chunks = first ? [first] : [];
  for (let n = await rest.next(); !n.done; n = await rest.next()) chunks.push(n.value);
  return Buffer.concat(chunks);
}

export async function* chain(first: Buffer | undefined, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (first) yield first;
  for (let n = await rest.next(); !n.done; n = await rest.next()) yield n.value;
}
