import { Readable } from 'node:stream';
import { InvalidInputError } from '../errors.js';
import { BLOCK_SIZE, FIELD, TYPEFLAG, paddingFor, unsignedChecksum, type FieldName } from './tar-format.js';
import type { TarHeader } from './tar-reader.js';

/**
 * A streaming tar writer producing POSIX pax-compatible ustar output. The bytes depend only on
 * the entries given (uname/gname are always empty, pax header names and times are fixed), so the
 * same entries always give the same tar and therefore the same DiffID.
 */

/** Largest values of the 8-byte (mode, uid, gid) and 12-byte (size, mtime) octal fields. */
const MAX_OCTAL_8 = 0o7777777;
const MAX_OCTAL_12 = 0o77777777777;

export interface TarWriterOptions {
  /** Bytes buffered in `stream` before `entry()` waits for the consumer. */
  highWaterMark?: number;
}

export class TarWriter {
  /** The tar bytes. Entries are written only as fast as this stream is read. */
  readonly stream: Readable;
  private wakeWriter?: () => void;
  private failWriter?: (error: Error) => void;
  private busy = false;
  private finished = false;

  constructor(options: TarWriterOptions = {}) {
    this.stream = new Readable({
      highWaterMark: options.highWaterMark ?? 64 * 1024,
      read: () => this.wake(),
      destroy: (error, callback) => {
        this.fail(error ?? new Error('tar output stream was destroyed'));
        callback(error);
      },
    });
  }

  /**
   * Appends one entry. A file's body must hold exactly `header.size` bytes; other types take no
   * body. Chunks are passed on without copying, so don't reuse a buffer after handing it over.
   * Resolves once the entry is in the stream's buffer; call entries one at a time.
   * A header that cannot be written throws InvalidInputError and leaves the stream usable; a
   * body of the wrong length or a failing body destroys the stream (its output would be corrupt).
   */
  async entry(header: TarHeader, body?: AsyncIterable<Uint8Array> | Uint8Array): Promise<void> {
    this.begin();
    try {
      const headerBytes = encodeHeader(header);
      if (header.type !== 'file' && body !== undefined) await expectEmpty(header, body);
      try {
        await this.write(headerBytes);
        if (header.type === 'file') await this.writeBody(header, body);
      } catch (error) {
        this.stream.destroy(error as Error);
        throw error;
      }
    } finally {
      this.busy = false;
    }
  }

  /** Writes the end-of-archive marker (two zero blocks) and ends the stream. */
  async finish(): Promise<void> {
    this.begin();
    try {
      await this.write(Buffer.alloc(2 * BLOCK_SIZE));
      this.finished = true;
      this.stream.push(null);
    } finally {
      this.busy = false;
    }
  }

  /** Ends the output with an error, e.g. when the source of the entries failed. */
  abort(error: Error): void {
    this.stream.destroy(error);
  }

  private begin(): void {
    if (this.finished) throw new Error('tar writer is already finished');
    if (this.busy) throw new Error('tar writer entries must be written one at a time');
    if (this.stream.destroyed) throw new Error('tar output stream was destroyed');
    this.busy = true;
  }

  private async writeBody(header: TarHeader, body: AsyncIterable<Uint8Array> | Uint8Array | undefined): Promise<void> {
    const chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> = body === undefined ? [] : body instanceof Uint8Array ? [body] : body;
    let written = 0;
    for await (const chunk of chunks) {
      written += chunk.length;
      if (written > header.size) break;
      if (chunk.length > 0) await this.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    }
    if (written !== header.size) {
      throw new Error(`tar entry ${JSON.stringify(header.path)}: body has ${written > header.size ? 'more' : written} bytes, header says ${header.size}`);
    }
    const padding = paddingFor(header.size);
    if (padding > 0) await this.write(Buffer.alloc(padding));
  }

  private async write(chunk: Buffer): Promise<void> {
    if (this.stream.destroyed) throw new Error('tar output stream was destroyed');
    if (this.stream.push(chunk)) return;
    await new Promise<void>((resolve, reject) => {
      this.wakeWriter = resolve;
      this.failWriter = reject;
    });
  }

  private wake(): void {
    const wake = this.wakeWriter;
    this.wakeWriter = this.failWriter = undefined;
    wake?.();
  }

  private fail(error: Error): void {
    const fail = this.failWriter;
    this.wakeWriter = this.failWriter = undefined;
    fail?.(error);
  }
}

/** Directories and links have no content; an empty body is accepted so a reader's entries can be passed straight through. */
async function expectEmpty(header: TarHeader, body: AsyncIterable<Uint8Array> | Uint8Array): Promise<void> {
  const chunks = body instanceof Uint8Array ? [body] : body;
  for await (const chunk of chunks) {
    if (chunk.length > 0) throw new InvalidInputError(`tar ${header.type} entry ${JSON.stringify(header.path)} cannot have a body`);
  }
}

// ---- header encoding ---------------------------------------------------------------------

const TYPEFLAG_OF = {
  file: TYPEFLAG.file,
  directory: TYPEFLAG.directory,
  symlink: TYPEFLAG.symlink,
  hardlink: TYPEFLAG.hardlink,
} as const;

/**
 * The header block, preceded by a pax 'x' header when a value does not fit ustar: a path that
 * cannot be split into prefix/name, a link target over 100 bytes, non-ASCII text (as Go's
 * archive/tar does), a size of 8 GiB or more, ids over 2097151, or a time before 1970 or after 6053.
 */
function encodeHeader(header: TarHeader): Buffer {
  const { path, type } = header;
  if (type === 'other') throw new InvalidInputError(`cannot write tar entry ${JSON.stringify(path)} of type other`);
  if (!(type in TYPEFLAG_OF)) throw new InvalidInputError(`unknown tar entry type ${JSON.stringify(type)}`);
  checkText(path, 'path');
  if (path === '') throw new InvalidInputError('tar entry path is empty');
  checkInteger(header.mode, 'mode', 0, Number.MAX_SAFE_INTEGER);
  checkInteger(header.uid, 'uid', 0, 0xffff_ffff);
  checkInteger(header.gid, 'gid', 0, 0xffff_ffff);
  checkInteger(header.mtime, 'mtime', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  checkInteger(header.size, 'size', 0, Number.MAX_SAFE_INTEGER);
  if (type !== 'file' && header.size !== 0) throw new InvalidInputError(`tar ${type} entry ${JSON.stringify(path)} must have size 0`);

  const pax: [string, string][] = [];
  const fields: UstarFields = {
    name: path,
    prefix: '',
    mode: header.mode & 0o7777,
    uid: header.uid,
    gid: header.gid,
    size: header.size,
    mtime: header.mtime,
    typeflag: TYPEFLAG_OF[type],
    linkname: '',
  };

  if (!fitsUstar(path, FIELD.name[1])) {
    const split = splitUstarPath(path);
    if (split) [fields.prefix, fields.name] = split;
    else {
      pax.push(['path', path]);
      fields.name = ustarFallback(path, FIELD.name[1]);
    }
  }
  if (type === 'symlink' || type === 'hardlink') {
    const linkname = header.linkname ?? '';
    checkText(linkname, 'link target');
    if (linkname === '') throw new InvalidInputError(`tar ${type} entry ${JSON.stringify(path)} has no target`);
    fields.linkname = linkname;
    if (!fitsUstar(linkname, FIELD.linkname[1])) {
      pax.push(['linkpath', linkname]);
      fields.linkname = ustarFallback(linkname, FIELD.linkname[1]);
    }
  }
  if (fields.size > MAX_OCTAL_12) {
    pax.push(['size', String(fields.size)]);
    fields.size = 0;
  }
  for (const id of ['uid', 'gid'] as const) {
    if (fields[id] > MAX_OCTAL_8) {
      pax.push([id, String(fields[id])]);
      fields[id] = 0;
    }
  }
  if (fields.mtime < 0 || fields.mtime > MAX_OCTAL_12) {
    pax.push(['mtime', String(fields.mtime)]);
    fields.mtime = 0;
  }

  const block = ustarBlock(fields);
  if (pax.length === 0) return block;
  const data = Buffer.concat(pax.map(([key, value]) => paxRecord(key, value)));
  const paxHeader = ustarBlock({
    name: paxHeaderName(path),
    prefix: '',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: 0,
    typeflag: TYPEFLAG.paxHeader,
    linkname: '',
  });
  return Buffer.concat([paxHeader, data, Buffer.alloc(paddingFor(data.length)), block]);
}

interface UstarFields {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname: string;
}

function ustarBlock(f: UstarFields): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  const put = (name: FieldName, text: string) => {
    const [start, len] = FIELD[name];
    block.write(text, start, len, 'latin1');
  };
  const octal = (name: FieldName, value: number) => {
    const len = FIELD[name][1];
    put(name, value.toString(8).padStart(len - 1, '0')); // the last byte stays NUL
  };
  put('name', f.name);
  octal('mode', f.mode);
  octal('uid', f.uid);
  octal('gid', f.gid);
  octal('size', f.size);
  octal('mtime', f.mtime);
  block[FIELD.typeflag[0]] = f.typeflag;
  put('linkname', f.linkname);
  put('magic', 'ustar\0');
  put('version', '00');
  octal('devmajor', 0);
  octal('devminor', 0);
  put('prefix', f.prefix);
  // Six octal digits, NUL, space: the traditional layout every reader accepts.
  put('checksum', `${unsignedChecksum(block).toString(8).padStart(6, '0')}\0 `);
  return block;
}

function isAscii(text: string): boolean {
  return /^[\x01-\x7f]*$/.test(text);
}

function fitsUstar(text: string, fieldBytes: number): boolean {
  return isAscii(text) && text.length <= fieldBytes;
}

/** Splits a long ASCII path at a '/' into prefix (<= 155 bytes) and name (<= 100 bytes), as Go's archive/tar does. */
function splitUstarPath(path: string): [string, string] | undefined {
  if (!isAscii(path)) return undefined;
  let length = path.length;
  if (length > FIELD.prefix[1] + 1) length = FIELD.prefix[1] + 1;
  else if (path[length - 1] === '/') length--;
  const slash = path.lastIndexOf('/', length - 1);
  const nameLength = path.length - slash - 1;
  if (slash <= 0 || nameLength === 0 || nameLength > FIELD.name[1] || slash > FIELD.prefix[1]) return undefined;
  return [path.slice(0, slash), path.slice(slash + 1)];
}

/** What a reader without pax support sees: the value cut to ASCII and to the field's size. */
function ustarFallback(text: string, fieldBytes: number): string {
  return text.replace(/[^\x01-\x7f]/g, '_').slice(0, fieldBytes);
}

/** `PaxHeaders.0/<base name>` beside the entry, as Go names it; fixed so output is reproducible. */
function paxHeaderName(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  const slash = trimmed.lastIndexOf('/');
  const dir = slash === -1 ? '' : trimmed.slice(0, slash + 1);
  return ustarFallback(`${dir}PaxHeaders.0/${trimmed.slice(slash + 1)}`, FIELD.name[1]);
}

/** `<length> <key>=<value>\n`, where length counts the whole record including its own digits. */
function paxRecord(key: string, value: string): Buffer {
  const rest = ` ${key}=${value}\n`;
  const restBytes = Buffer.byteLength(rest);
  let digits = String(restBytes).length;
  while (String(restBytes + digits).length > digits) digits++;
  return Buffer.from(`${restBytes + digits}${rest}`, 'utf8');
}

function checkText(text: string, what: string): void {
  if (typeof text !== 'string') throw new InvalidInputError(`tar entry ${what} must be a string`);
  if (text.includes('\0')) throw new InvalidInputError(`NUL byte in tar entry ${what}`);
}

function checkInteger(value: number, what: string, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidInputError(`tar entry ${what} ${value} is out of range`);
  }
}
