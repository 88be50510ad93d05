import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../shared/errors.js';
import { layerEntryPath, whiteoutOf } from '../../shared/tar/layer-paths.js';

describe('layerEntryPath', () => {
  it.each([
    ['./a/b/', '/a/b'],
    ['a//b', '/a/b'],
    ['a/b', '/a/b'],
    ['./a/./b', '/a/b'],
    ['a/../b', '/b'],
    ['a/b/../../c', '/c'],
    ['./', '/'],
    ['.', '/'],
    ['/', '/'],
    ['a/..', '/'],
    // Some tools write absolute names; they are relative to the layer root.
    ['/etc/passwd', '/etc/passwd'],
    ['//etc//passwd', '/etc/passwd'],
    ['a\\..\\..\\b', '/a\\..\\..\\b'], // backslash is an ordinary character in tar names
    ['répertoire/fichier', '/répertoire/fichier'],
  ])('%j -> %j', (raw, clean) => {
    expect(layerEntryPath(raw)).toBe(clean);
  });

  it.each(['../../etc/passwd', '../x', 'a/../../x', './..', '/../etc/shadow', 'a/b/../../../x'])('rejects %j, which climbs above the root', (raw) => {
    expect(() => layerEntryPath(raw)).toThrow(InvalidInputError);
    expect(() => layerEntryPath(raw)).toThrow(/climbs above the root/);
  });

  it('rejects NUL bytes, which would truncate the name for anything downstream', () => {
    expect(() => layerEntryPath('etc/passwd\0.txt')).toThrow(/NUL byte/);
  });

  it('rejects a name over 255 bytes, counting UTF-8 bytes', () => {
    expect(layerEntryPath(`a/${'x'.repeat(255)}`)).toBe(`/a/${'x'.repeat(255)}`);
    expect(() => layerEntryPath(`a/${'x'.repeat(256)}`)).toThrow(InvalidInputError);
    expect(() => layerEntryPath('é'.repeat(128))).toThrow(/over 255 bytes/); // 256 bytes, 128 characters
  });

  it('rejects a whole path over 4096 bytes', () => {
    const ok = `/${Array.from({ length: 16 }, () => 'y'.repeat(254)).join('/')}`; // 16 * 255 = 4080 bytes
    expect(layerEntryPath(ok)).toBe(ok);
    const long = Array.from({ length: 17 }, () => 'y'.repeat(254)).join('/');
    expect(() => layerEntryPath(long)).toThrow(/over 4096 bytes/);
  });

  it('rejects the empty name but not the root', () => {
    expect(() => layerEntryPath('')).toThrow(InvalidInputError);
    expect(layerEntryPath('./')).toBe('/');
  });

  it('normalises hard link targets the same way, so they cannot leave the layer', () => {
    expect(layerEntryPath('./usr/bin/../lib/x')).toBe('/usr/lib/x');
    expect(() => layerEntryPath('../../../proc/self/environ')).toThrow(InvalidInputError);
  });
});

describe('whiteoutOf', () => {
  it('recognises a whiteout and names the path it deletes', () => {
    expect(whiteoutOf('/etc/.wh.passwd')).toEqual({ kind: 'whiteout', target: '/etc/passwd' });
    expect(whiteoutOf('/.wh.etc')).toEqual({ kind: 'whiteout', target: '/etc' });
    expect(whiteoutOf('./usr/.wh.lib/')).toEqual({ kind: 'whiteout', target: '/usr/lib' });
  });

  it('recognises an opaque marker and names its directory', () => {
    expect(whiteoutOf('/var/cache/.wh..wh..opq')).toEqual({ kind: 'opaque', dir: '/var/cache' });
    expect(whiteoutOf('.wh..wh..opq')).toEqual({ kind: 'opaque', dir: '/' });
  });

  it('leaves ordinary entries alone, including names that merely contain .wh.', () => {
    expect(whiteoutOf('/etc/passwd')).toBeUndefined();
    expect(whiteoutOf('/etc/x.wh.y')).toBeUndefined();
    expect(whiteoutOf('/.wh.dir/file')).toBeUndefined(); // only the last component marks a whiteout
    expect(whiteoutOf('/')).toBeUndefined();
  });

  it('reads AUFS bookkeeping names as whiteouts of names no entry can have', () => {
    expect(whiteoutOf('/.wh..wh.plnk')).toEqual({ kind: 'whiteout', target: '/.wh.plnk' });
  });

  it('rejects whiteouts that would delete the directory itself or climb out of it', () => {
    expect(() => whiteoutOf('/etc/.wh.')).toThrow(InvalidInputError);
    expect(() => whiteoutOf('/etc/.wh..')).toThrow(InvalidInputError);
    expect(() => whiteoutOf('/etc/.wh...')).toThrow(InvalidInputError);
  });

  it('rejects hostile names the way layerEntryPath does', () => {
    expect(() => whiteoutOf('../../.wh.etc')).toThrow(InvalidInputError);
  });
});
