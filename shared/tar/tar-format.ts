/**
 * The ustar header layout (POSIX.1-1988, as extended by pax) shared by the reader and the writer.
 */

export const BLOCK_SIZE = 512;

/** Byte offset and length of each ustar header field. */
export const FIELD = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

export type FieldName = keyof typeof FIELD;

/** Type flags this code gives a meaning to; anything else is read as an opaque entry. */
export const TYPEFLAG = {
  file: 0x30, // '0'
  oldFile: 0x00, // NUL, pre-POSIX regular file
  hardlink: 0x31, // '1'
  symlink: 0x32, // '2'
  charDevice: 0x33, // '3'
  blockDevice: 0x34, // '4'
  directory: 0x35, // '5'
  fifo: 0x36, // '6'
  contiguous: 0x37, // '7', a regular file everywhere that matters
  paxHeader: 0x78, // 'x', pax extended header for the next entry
  paxGlobal: 0x67, // 'g', pax global header
  gnuLongName: 0x4c, // 'L'
  gnuLongLink: 0x4b, // 'K'
  gnuSparse: 0x53, // 'S'
} as const;

/** Unsigned byte sum of a header with the checksum field counted as spaces (the POSIX rule). */
export function unsignedChecksum(block: Uint8Array): number {
  const [start, len] = FIELD.checksum;
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) sum += i >= start && i < start + len ? 0x20 : block[i]!;
  return sum;
}

/** The same sum over signed bytes, which some historic tars (old Sun tar) wrote instead. */
export function signedChecksum(block: Uint8Array): number {
  const [start, len] = FIELD.checksum;
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) sum += i >= start && i < start + len ? 0x20 : (block[i]! << 24) >> 24;
  return sum;
}

/** Zero bytes needed after `size` bytes of content to reach the next block boundary. */
export function paddingFor(size: number): number {
  const rest = size % BLOCK_SIZE;
  return rest === 0 ? 0 : BLOCK_SIZE - rest;
}
