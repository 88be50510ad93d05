import { createHash } from 'node:crypto';
import { InvalidInputError } from '../errors.js';

const REPO = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST = /^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?|localhost(?::[0-9]+)?)$/;

/**
 * Image references in the short form `docker image ls` shows: `docker.io/library/alpine` and
 * `alpine` are the same image, stored as `alpine:latest`.
 */
export function normalizeReference(raw: string): string {
  let ref = raw.trim();
  if (!ref) throw new InvalidInputError('image reference is empty');
  let tag = 'latest';
  const at = ref.indexOf('@');
  if (at >= 0) throw new InvalidInputError('digest references are not supported; use a tag or an image ID');
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) {
    tag = ref.slice(colon + 1);
    ref = ref.slice(0, colon);
  }
  const parts = ref.split('/');
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) {
    if (!HOST.test(parts[0])) throw new InvalidInputError(`invalid registry host in ${JSON.stringify(raw)}`);
  }
  if (parts[0] === 'docker.io' || parts[0] === 'index.docker.io') parts.shift();
  if (parts.length === 2 && parts[0] === 'library') parts.shift();
  const hostPart = parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost') ? parts.shift()! + '/' : '';
  const repo = parts.join('/');
  if (!REPO.test(repo) || !TAG.test(tag)) throw new InvalidInputError(`invalid image reference ${JSON.stringify(raw)}`);
  return `${hostPart}${repo}:${tag}`;
}

/** True for `sha256:<hex>` or a hex prefix of at least 4 characters. */
export function looksLikeImageId(ref: string): boolean {
  return /^sha256:[0-9a-f]{4,64}$/.test(ref) || /^[0-9a-f]{4,64}$/.test(ref);
}

/** ChainID(L0) = DiffID(L0); ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const previous = out[out.length - 1];
    out.push(previous === undefined ? diffId : `sha256:${createHash('sha256').update(`${previous} ${diffId}`).digest('hex')}`);
  }
  return out;
}

export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
