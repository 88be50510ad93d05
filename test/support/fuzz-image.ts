import type { Vocabulary } from './fs-ops.js';
import type { DirEntry } from './layer-dirs.js';

/**
 * The two-layer image the differential tests run their random sequences on: whiteouts, an opaque
 * directory, hard links within a layer, names with spaces, unicode and dots, symlink loops and
 * escapes, owners and modes; and the vocabulary the sequences draw their paths from.
 */
export const base: DirEntry[] = [
  { path: 'etc/hello.txt', content: 'hello\n' },
  { path: 'etc/passwd', content: 'root:x:0:0\n', mode: 0o600 },
  { path: 'etc/sub/deep.txt', content: 'deep' },
  { path: 'bin/sh', content: '#!sh', mode: 0o755 },
  { path: 'bin/ls', symlink: 'sh' },
  { path: 'data/a', content: 'A' },
  { path: 'data/b', content: 'BB' },
  { path: 'data/nested/c', content: 'CCC' },
  { path: 'opt/dir/sub1/x', content: 'x' },
  { path: 'opt/dir/sub2/y', content: 'y' },
  { path: 'with space/file one', content: '1 1' },
  { path: 'ünï/ß.txt', content: 'ß' },
  { path: 'dots/..hidden', content: 'h' },
  { path: 'dots/.x', content: '.' },
  { path: 'dots/a.b.c', content: 'abc' },
  { path: 'links/abs', symlink: '/etc/hello.txt' },
  { path: 'links/rel', symlink: '../etc' },
  { path: 'links/dangling', symlink: '/nowhere/x' },
  { path: 'links/loop', symlink: 'loop' },
  { path: 'links/up', symlink: '../../../etc' },
  { path: 'links/todir', symlink: '/opt/dir' },
  { path: 'empty', dir: true },
  { path: 'owned', content: 'o', mode: 0o640, uid: 1000, gid: 1000 },
  { path: 'etc/sub/linked', hardlink: 'etc/hello.txt' },
  { path: 'data/nested/twin', hardlink: 'data/nested/c' },
  { path: 'dots/twin', hardlink: 'data/nested/c' },
  { path: 'bin/sh2', hardlink: 'bin/sh' },
  { path: 'with space/ß', hardlink: 'ünï/ß.txt' },
];
export const top: DirEntry[] = [
  { path: 'etc/hello.txt', content: 'hello v2\n' },
  { path: 'etc/passwd', whiteout: true },
  { path: 'data', opaque: true },
  { path: 'data/new', content: 'N' },
  { path: 'opt/dir/sub2', whiteout: true },
  { path: 'new2/file', content: 'F' },
];

export const words: Vocabulary = {
  dirs: ['/', '/etc', '/etc/sub', '/bin', '/data', '/data/nested', '/opt', '/opt/dir', '/opt/dir/sub1', '/opt/dir/sub2', '/with space', '/ünï', '/dots', '/links', '/links/rel', '/links/todir', '/empty', '/new2', '/fresh', '/fresh/inner'],
  names: ['linked', 'twin', 'hello.txt', 'passwd', 'sub', 'deep.txt', 'sh', 'ls', 'a', 'b', 'c', 'nested', 'x', 'y', 'sub1', 'sub2', 'dir', 'file one', 'ß.txt', '..hidden', '.x', 'a.b.c', 'abs', 'rel', 'dangling', 'loop', 'up', 'todir', 'new', 'file', 'fresh', 'inner', 'n 2', 'ünï', '...'],
  targets: ['/etc', '../etc', 'hello.txt', '/data/a', 'nowhere', '/fresh', '.', '..', 'loop', '../../..', '/links/loop', 'sub1'],
};
