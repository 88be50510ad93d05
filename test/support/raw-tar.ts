/**
 * Tar headers written byte by byte, independently of shared/tar, so that hostile fixtures can
 * break any field: the project's own writer refuses to produce most of them.
 */

export interface RawHeaderFields {
  name?: string | Buffer;
  mode?: string | Buffer;
  uid?: string | Buffer;
  gid?: string | Buffer;
  /** The size field; a number is written as octal. */
  size?: number | string | Buffer;
  mtime?: string | Buffer;
  typeflag?: string;
  linkname?: string;
  magic?: string;
  /** A checksum field to write instead of the right one. */
  checksum?: string;
}

export function rawHeader(fields: RawHeaderFields = {}): Buffer {
  const block = Buffer.alloc(512);
  const put = (value: string | Buffer, offset: number, length: number) => {
    const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
    bytes.copy(block, offset, 0, Math.min(length, bytes.length));
  };
  const size = fields.size ?? 0;
  put(fields.name ?? 'file', 0, 100);
  put(fields.mode ?? '0000644\0', 100, 8);
  put(fields.uid ?? '0000000\0', 108, 8);
  put(fields.gid ?? '0000000\0', 116, 8);
  put(typeof size === 'number' ? `${size.toString(8).padStart(11, '0')}\0` : size, 124, 12);
  put(fields.mtime ?? '14572623420\0', 136, 12);
  put(fields.typeflag ?? '0', 156, 1);
  put(fields.linkname ?? '', 157, 100);
  put(fields.magic ?? 'ustar\0', 257, 6);
  put('00', 263, 2);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  put(fields.checksum ?? `${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return block;
}

/** An entry: header, data, padding to the block. */
export function rawEntry(fields: RawHeaderFields, data: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = Buffer.from(data);
  const size = fields.size ?? body.length;
  return Buffer.concat([rawHeader({ ...fields, size }), body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

/** A pax 'x' header carrying `records` for the entry after it. */
export function paxEntry(records: Record<string, string> | Buffer): Buffer {
  const data = Buffer.isBuffer(records)
    ? records
    : Buffer.concat(
        Object.entries(records).map(([key, value]) => {
          const text = ` ${key}=${value}\n`;
          let length = text.length + 1;
          while (String(length).length + Buffer.byteLength(text) !== length) length = String(length).length + Buffer.byteLength(text);
          return Buffer.from(`${length}${text}`);
        }),
      );
  return rawEntry({ name: 'PaxHeaders/x', typeflag: 'x' }, data);
}

export const END = Buffer.alloc(1024);

/** A complete tar from entries. */
export function rawTar(...entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, END]);
}
