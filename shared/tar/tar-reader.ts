import type { Readable } from 'node:stream';
import { InvalidInputError, TooLargeError } from '../errors.js';
import { BLOCK_SIZE, FIELD, TYPEFLAG, paddingFor, signedChecksum, unsignedChecksum, type FieldName } from './tar-format.js';

/**
 * A streaming tar parser: ustar, POSIX pax ('x' per-entry headers; 'g' global headers are
 * skipped) and the GNU long name/link ('L'/'K') extensions. The input is treated as hostile:
 * checksums are verified, every size is bounded before anything is buffered, and entry bodies
 * stream through in the chunks they arrive in, so memory stays bounded whatever the archive.
 */

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarHeader {
  /** The name as stored in the archive (pax or GNU long name wins), before any normalisation. */
  path: string;
  /** Character and block devices, fifos and unknown type flags are 'other'; callers skip them. */
  type: TarEntryType;
  /** Permission bits including setuid, setgid and sticky (masked with 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Content bytes; always 0 for directories, links and devices. */
  size: number;
  /** Seconds since the epoch (pax fractions are floored). */
  mtime: number;
  /** Target of a symlink or hard link. */
  linkname?: string;
  uname?: string;
  gname?: string;
}

export interface TarEntry {
  header: TarHeader;
  /** Offset of the entry's content in the uncompressed tar stream: its bytes are [dataOffset, dataOffset + size). */
  dataOffset: number;
  /**
   * The content, readable once and only until the next entry is requested. Reading it is
   * optional: the reader skips whatever is left unread before it parses the next header.
   */
  body: AsyncIterable<Buffer>;
}

export interface TarLimits {
  /** Entries yielded (metadata headers such as pax 'x' do not count). */
  maxEntries: number;
  /** UTF-8 bytes of an entry path or link target. */
  maxPathBytes: number;
  /** UTF-8 bytes of one path component. */
  maxNameBytes: number;
  /** Bytes of the whole uncompressed tar stream, trailing padding included. */
  maxTotalBytes: number;
  /** Bytes of one pax extended header's data. */
  maxPaxHeaderBytes: number;
}

export const DEFAULT_TAR_LIMITS: Readonly<TarLimits> = Object.freeze({
  maxEntries: 1_000_000,
  maxPathBytes: 4096,
  maxNameBytes: 255,
  maxTotalBytes: 64 * 1024 ** 3,
  maxPaxHeaderBytes: 1024 ** 2,
});

/** Parses a tar stream entry by entry. Throws InvalidInputError for a malformed or truncated archive, TooLargeError past a limit. */
export async function* readTar(source: AsyncIterable<Buffer> | Readable, limits: Partial<TarLimits> = {}): AsyncGenerator<TarEntry> {
  const limit: TarLimits = { ...DEFAULT_TAR_LIMITS, ...limits };
  const input = new ByteSource(source, limit.maxTotalBytes);
  let pending: PendingMeta | undefined;
  let body: EntryBody | undefined;
  let entries = 0;
  try {
    for (;;) {
      const headerOffset = input.offset;
      const block = await input.readExactly(BLOCK_SIZE);
      if (!block) {
        throw new InvalidInputError(`truncated tar archive: input ends at offset ${headerOffset} without an end-of-archive marker`);
      }
      if (isZeroBlock(block)) {
        // End of archive is two zero blocks; like Go's archive/tar (Docker's reader) we accept
        // input that stops after the first, but a zero block followed by data is malformed.
        const next = await input.readExactly(BLOCK_SIZE);
        if (next && !isZeroBlock(next)) throw new InvalidInputError(`invalid tar archive: lone zero block at offset ${headerOffset}`);
        if (pending) {
          throw new InvalidInputError(`invalid tar archive: extended header at offset ${pending.offset} has no entry after it`);
        }
        await input.drain(); // record padding after the marker; drained so callers hashing the stream see all of it
        return;
      }

      const raw = decodeHeader(block, headerOffset);
      const dataOffset = headerOffset + BLOCK_SIZE;
      switch (raw.typeflag) {
        case TYPEFLAG.paxHeader: {
          if (raw.size > limit.maxPaxHeaderBytes) {
            throw new TooLargeError(`pax header at offset ${headerOffset} is ${raw.size} bytes, over the ${limit.maxPaxHeaderBytes}-byte limit`);
          }
          pending ??= { offset: headerOffset, pax: new Map() };
          const data = await readMetaData(input, raw.size);
          for (const [key, value] of parsePaxRecords(data, headerOffset)) pending.pax.set(key, value);
          continue;
        }
        case TYPEFLAG.paxGlobal:
          // Global headers only carry defaults such as comments or charset; nothing we use.
          await input.skip(raw.size + paddingFor(raw.size));
          continue;
        case TYPEFLAG.gnuLongName:
        case TYPEFLAG.gnuLongLink: {
          if (raw.size > limit.maxPathBytes + 1) {
            throw new TooLargeError(`GNU long name at offset ${headerOffset} is ${raw.size} bytes, over the ${limit.maxPathBytes}-byte path limit`);
          }
          pending ??= { offset: headerOffset, pax: new Map() };
          const name = decodeText(cString(await readMetaData(input, raw.size)), 'GNU long name', headerOffset);
          if (raw.typeflag === TYPEFLAG.gnuLongName) pending.longName = name;
          else pending.longLink = name;
          continue;
        }
        case TYPEFLAG.gnuSparse:
          throw new InvalidInputError(`GNU sparse file at offset ${headerOffset} is not supported`);
      }

      const header = resolveHeader(raw, pending, headerOffset, limit);
      pending = undefined;
      if (dataOffset + header.size > limit.maxTotalBytes) {
        throw new TooLargeError(`tar entry at offset ${headerOffset} claims ${header.size} bytes, over the ${limit.maxTotalBytes}-byte archive limit`);
      }
      if (++entries > limit.maxEntries) throw new TooLargeError(`tar archive has more than ${limit.maxEntries} entries`);

      // header.size is 0 for directories, links and devices whatever their size field says: as in
      // Go's archive/tar, no data follows them, so we see the same entries Docker sees.
      body = new EntryBody(input, header.size);
      yield { header, dataOffset, body };
      await body.close();
      body = undefined;
    }
  } finally {
    body?.abandon();
    await input.close();
  }
}

// ---- input -------------------------------------------------------------------------------

/** Pull-based reader over the source's chunks that tracks the stream offset. */
class ByteSource {
  /** Bytes handed out so far, which is the offset of the next byte in the tar stream. */
  offset = 0;
  private leftover: Buffer | undefined;
  private readonly iterator: AsyncIterator<unknown>;

  constructor(
    source: AsyncIterable<unknown>,
    private readonly maxBytes: number,
  ) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** At least one and at most `max` bytes, or undefined at the end of input. */
  async readSome(max: number): Promise<Buffer | undefined> {
    let chunk = this.leftover;
    this.leftover = undefined;
    while (!chunk) {
      const next = await this.iterator.next();
      if (next.done) return undefined;
      const buf = toBuffer(next.value);
      if (buf.length > 0) chunk = buf;
    }
    if (chunk.length > max) {
      this.leftover = chunk.subarray(max);
      chunk = chunk.subarray(0, max);
    }
    this.offset += chunk.length;
    if (this.offset > this.maxBytes) throw new TooLargeError(`tar archive is over the ${this.maxBytes}-byte limit`);
    return chunk;
  }

  /** Exactly `n` bytes, or undefined if the input ended before the first of them. */
  async readExactly(n: number): Promise<Buffer | undefined> {
    const first = await this.readSome(n);
    if (!first || first.length === n) return first;
    const parts = [first];
    let got = first.length;
    while (got < n) {
      const more = await this.readSome(n - got);
      if (!more) throw truncated(this.offset);
      parts.push(more);
      got += more.length;
    }
    return Buffer.concat(parts, n);
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      const chunk = await this.readSome(n);
      if (!chunk) throw truncated(this.offset);
      n -= chunk.length;
    }
  }

  async drain(): Promise<void> {
    while (await this.readSome(Number.MAX_SAFE_INTEGER));
  }

  /** Releases the source (a Readable is destroyed) when the consumer stops early or on error. */
  async close(): Promise<void> {
    await this.iterator.return?.();
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk, 'latin1');
  throw new TypeError('tar source must yield Buffers');
}

function truncated(offset: number): InvalidInputError {
  return new InvalidInputError(`truncated tar archive: unexpected end of input at offset ${offset}`);
}

/** Reads a metadata entry's data (already bounded by the caller) and its padding. */
async function readMetaData(input: ByteSource, size: number): Promise<Buffer> {
  const data = size === 0 ? Buffer.alloc(0) : await input.readExactly(size);
  if (!data) throw truncated(input.offset);
  await input.skip(paddingFor(size));
  return data;
}

/** One entry's content: streamed from the source on demand, skipped by the reader if left unread. */
class EntryBody implements AsyncIterable<Buffer> {
  private remaining: number;
  private claimed = false;
  private reading = false;
  private stale = false;

  constructor(
    private readonly input: ByteSource,
    private readonly size: number,
  ) {
    this.remaining = size;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.claimed) throw new Error('a tar entry body can only be read once');
    this.claimed = true;
    return this.chunks();
  }

  private async *chunks(): AsyncGenerator<Buffer> {
    if (this.stale) throw new Error('tar entry body read after the reader moved past the entry');
    while (this.remaining > 0) {
      if (this.stale) throw new Error('tar entry body read after the reader moved past the entry');
      this.reading = true;
      let chunk: Buffer | undefined;
      try {
        chunk = await this.input.readSome(this.remaining);
      } finally {
        this.reading = false;
      }
      if (!chunk) throw truncated(this.input.offset);
      this.remaining -= chunk.length;
      yield chunk;
    }
  }

  /** Skips the unread rest and the padding, so the source is positioned at the next header. */
  async close(): Promise<void> {
    if (this.reading) throw new Error('the next tar entry was requested while the previous body was still being read');
    this.stale = true;
    const rest = this.remaining + paddingFor(this.size);
    this.remaining = 0;
    await this.input.skip(rest);
  }

  abandon(): void {
    this.stale = true;
  }
}

// ---- headers -----------------------------------------------------------------------------

interface RawHeader {
  typeflag: number;
  name: string;
  linkname: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  uname: string;
  gname: string;
}

/** What pax 'x' and GNU 'L'/'K' headers said about the entry that follows them. */
interface PendingMeta {
  offset: number;
  pax: Map<string, Buffer>;
  longName?: string;
  longLink?: string;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

function decodeHeader(block: Buffer, offset: number): RawHeader {
  let stored: number | undefined;
  try {
    stored = parseNumber(block, 'checksum', offset, { allowEmpty: false });
  } catch {
    stored = undefined; // an unreadable checksum field is reported as a mismatch too
  }
  if (stored !== unsignedChecksum(block) && stored !== signedChecksum(block)) {
    throw new InvalidInputError(`tar header checksum mismatch at offset ${offset}`);
  }
  const magic = field(block, 'magic').toString('latin1');
  const text = (name: FieldName) => decodeText(cString(field(block, name)), `header field ${name}`, offset);
  let name = text('name');
  // Only POSIX ustar has a prefix field; GNU tar keeps atime/ctime in those bytes.
  if (magic === 'ustar\0') {
    const prefix = text('prefix');
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  let typeflag = block[FIELD.typeflag[0]]!;
  // Pre-POSIX tars marked directories only with a trailing slash.
  if (typeflag === TYPEFLAG.oldFile && name.endsWith('/')) typeflag = TYPEFLAG.directory;
  return {
    typeflag,
    name,
    linkname: text('linkname'),
    mode: parseNumber(block, 'mode', offset) & 0o7777,
    uid: checkId(parseNumber(block, 'uid', offset), 'uid', offset),
    gid: checkId(parseNumber(block, 'gid', offset), 'gid', offset),
    size: parseNumber(block, 'size', offset),
    mtime: parseNumber(block, 'mtime', offset, { allowNegative: true }),
    uname: text('uname'),
    gname: text('gname'),
  };
}

function field(block: Buffer, name: FieldName): Buffer {
  const [start, len] = FIELD[name];
  return block.subarray(start, start + len);
}

/** The bytes before the first NUL. */
function cString(bytes: Buffer): Buffer {
  const nul = bytes.indexOf(0);
  return nul === -1 ? bytes : bytes.subarray(0, nul);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Names must be UTF-8: decoding anything else lossily could make two names collide. */
function decodeText(bytes: Uint8Array, what: string, offset: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new InvalidInputError(`tar ${what} at offset ${offset} is not valid UTF-8`);
  }
}

/**
 * A numeric header field: octal ASCII padded with spaces or NULs, or GNU base-256 (high bit of
 * the first byte set) for values too large for octal.
 */
function parseNumber(block: Buffer, name: FieldName, offset: number, { allowNegative = false, allowEmpty = true } = {}): number {
  const bytes = field(block, name);
  const invalid = () => new InvalidInputError(`invalid ${name} field in tar header at offset ${offset}`);
  if (bytes[0]! & 0x80) {
    const negative = bytes[0] === 0xff;
    if (negative && !allowNegative) throw invalid();
    let value = BigInt(bytes[0]! & 0x7f);
    for (let i = 1; i < bytes.length; i++) value = (value << 8n) | BigInt(bytes[i]!);
    if (negative) value = BigInt.asIntN(bytes.length * 8, value | (0xffn << BigInt((bytes.length - 1) * 8)));
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) throw invalid();
    return Number(value);
  }
  const digits = bytes.toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');
  if (digits === '') {
    if (!allowEmpty) throw invalid();
    return 0;
  }
  if (!/^[0-7]+$/.test(digits)) throw invalid();
  return parseInt(digits, 8);
}

function checkId(id: number, what: string, offset: number): number {
  if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) throw new InvalidInputError(`${what} out of range in tar header at offset ${offset}`);
  return id;
}

/**
 * Pax records are `<length> <key>=<value>\n`, where length counts the whole record. Values stay
 * bytes because some keys (SCHILY.xattr.*) hold binary data; only the keys we use are decoded.
 */
function parsePaxRecords(data: Buffer, offset: number): Map<string, Buffer> {
  const invalid = (why: string) => new InvalidInputError(`invalid pax header at offset ${offset}: ${why}`);
  const records = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) {
      // Some writers pad the data with NULs; anything else after them is garbage.
      if (data.subarray(pos).some((b) => b !== 0)) throw invalid('data after NUL padding');
      break;
    }
    const space = data.indexOf(0x20, pos);
    const lengthText = space === -1 ? '' : data.toString('latin1', pos, space);
    if (!/^[1-9][0-9]{0,9}$/.test(lengthText)) throw invalid('bad record length');
    const end = pos + Number(lengthText);
    if (end > data.length || end <= space + 1 || data[end - 1] !== 0x0a) throw invalid('record length does not match its data');
    const equals = data.indexOf(0x3d, space + 1);
    if (equals === -1 || equals >= end - 1 || equals === space + 1) throw invalid('record without key=value');
    const key = decodeText(data.subarray(space + 1, equals), 'pax key', offset);
    if (key.includes('\0')) throw invalid('NUL in key');
    if (key.startsWith('GNU.sparse.')) throw new InvalidInputError(`GNU sparse file at offset ${offset} is not supported`);
    records.set(key, data.subarray(equals + 1, end - 1));
    pos = end;
  }
  return records;
}

/** Combines the ustar header with the pax and GNU headers before it into the entry's header. */
function resolveHeader(raw: RawHeader, pending: PendingMeta | undefined, offset: number, limit: TarLimits): TarHeader {
  const type = entryType(raw.typeflag);
  // An empty pax value deletes the keyword, i.e. the ustar field stands.
  const pax = (key: string) => {
    const value = pending?.pax.get(key);
    return value && value.length > 0 ? value : undefined;
  };
  const paxText = (key: string) => {
    const value = pax(key);
    if (value === undefined) return undefined;
    const text = decodeText(value, `pax ${key}`, offset);
    if (text.includes('\0')) throw new InvalidInputError(`NUL byte in pax ${key} at offset ${offset}`);
    return text;
  };

  const path = paxText('path') ?? pending?.longName ?? raw.name;
  checkPath(path, 'path', offset, limit);
  if (path === '') throw new InvalidInputError(`tar entry at offset ${offset} has an empty name`);

  let size = 0;
  if (!HEADER_ONLY.has(raw.typeflag)) {
    const paxSize = pax('size');
    size = paxSize === undefined ? raw.size : paxInteger(paxSize, 'size', offset, limit.maxTotalBytes);
  }

  const header: TarHeader = {
    path,
    type,
    mode: raw.mode,
    uid: maybe(pax('uid'), (v) => checkId(paxInteger(v, 'uid', offset, Number.MAX_SAFE_INTEGER), 'uid', offset)) ?? raw.uid,
    gid: maybe(pax('gid'), (v) => checkId(paxInteger(v, 'gid', offset, Number.MAX_SAFE_INTEGER), 'gid', offset)) ?? raw.gid,
    size,
    mtime: maybe(pax('mtime'), (v) => paxSeconds(v, offset)) ?? raw.mtime,
  };
  if (type === 'symlink' || type === 'hardlink') {
    const linkname = paxText('linkpath') ?? pending?.longLink ?? raw.linkname;
    checkLink(linkname, offset, limit);
    header.linkname = linkname;
  }
  const uname = paxText('uname') ?? raw.uname;
  const gname = paxText('gname') ?? raw.gname;
  if (uname !== '') header.uname = uname;
  if (gname !== '') header.gname = gname;
  return header;
}

/** Types whose size field is ignored because no data follows them. */
const HEADER_ONLY = new Set<number>([TYPEFLAG.hardlink, TYPEFLAG.symlink, TYPEFLAG.charDevice, TYPEFLAG.blockDevice, TYPEFLAG.directory, TYPEFLAG.fifo]);

function entryType(typeflag: number): TarEntryType {
  switch (typeflag) {
    case TYPEFLAG.file:
    case TYPEFLAG.oldFile:
    case TYPEFLAG.contiguous:
      return 'file';
    case TYPEFLAG.directory:
      return 'directory';
    case TYPEFLAG.symlink:
      return 'symlink';
    case TYPEFLAG.hardlink:
      return 'hardlink';
    default:
      return 'other';
  }
}

function checkPath(path: string, what: string, offset: number, limit: TarLimits): void {
  if (Buffer.byteLength(path) > limit.maxPathBytes) {
    throw new TooLargeError(`tar entry ${what} at offset ${offset} is over ${limit.maxPathBytes} bytes`);
  }
  for (const part of path.split('/')) {
    if (Buffer.byteLength(part) > limit.maxNameBytes) {
      throw new TooLargeError(`a name in the tar entry ${what} at offset ${offset} is over ${limit.maxNameBytes} bytes`);
    }
  }
}

/** Link targets get the length limit; their components are checked when resolved. */
function checkLink(linkname: string, offset: number, limit: TarLimits): void {
  if (Buffer.byteLength(linkname) > limit.maxPathBytes) {
    throw new TooLargeError(`tar link target at offset ${offset} is over ${limit.maxPathBytes} bytes`);
  }
  if (linkname === '') throw new InvalidInputError(`tar link at offset ${offset} has an empty target`);
}

function maybe<T>(value: Buffer | undefined, parse: (v: Buffer) => T): T | undefined {
  return value === undefined ? undefined : parse(value);
}

/** A non-negative decimal; over `max` is TooLargeError (a hostile size), malformed is InvalidInputError. */
function paxInteger(value: Buffer, key: string, offset: number, max: number): number {
  const text = value.toString('latin1');
  if (!/^[0-9]+$/.test(text)) throw new InvalidInputError(`invalid pax ${key} ${JSON.stringify(text.slice(0, 40))} at offset ${offset}`);
  if (BigInt(text) > BigInt(max)) throw new TooLargeError(`pax ${key} at offset ${offset} is over ${max}`);
  return Number(text);
}

/** Pax times are decimal seconds with an optional fraction, possibly negative. */
function paxSeconds(value: Buffer, offset: number): number {
  const text = value.toString('latin1');
  const seconds = /^-?[0-9]{1,16}(\.[0-9]*)?$/.test(text) ? Math.floor(Number(text)) : NaN;
  if (!Number.isSafeInteger(seconds)) throw new InvalidInputError(`invalid pax mtime at offset ${offset}`);
  return seconds;
}
