import { InvalidInputError } from '../../shared/errors.js';

/** Request parsing helpers shared by operations: each refuses bad input with a 400 that says why. */

export function flag(query: Readonly<Record<string, string>>, name: string): boolean {
  const value = query[name];
  if (value === undefined) return false;
  if (['1', 'true', 'yes', ''].includes(value.toLowerCase())) return true;
  if (['0', 'false', 'no'].includes(value.toLowerCase())) return false;
  throw new InvalidInputError(`${name} must be true or false`);
}

export function nonNegativeInt(value: unknown, name: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new InvalidInputError(`${name} must be a non-negative integer`);
  return n;
}

export function optionalInt(value: unknown, name: string): number | undefined {
  return value === undefined || value === null ? undefined : nonNegativeInt(value, name);
}

/** A file mode given as a number or an octal string ("0644"). */
export function mode(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'string' ? (/^0?[0-7]{1,4}$/.test(value) ? parseInt(value, 8) : NaN) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0o7777) throw new InvalidInputError('mode must be an integer from 0 to 0o7777 (or an octal string like "0644")');
  return n;
}
