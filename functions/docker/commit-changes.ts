import type { RuntimeConfigChanges } from '../../shared/domain/image-config.js';
import { InvalidInputError } from '../../shared/errors.js';

/**
 * `docker commit --change 'ENV A=1'`: the Dockerfile instructions that set image config and
 * need no process (ENV, LABEL, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE, VOLUME).
 */
export function parseCommitChanges(lines: readonly string[]): RuntimeConfigChanges {
  const changes: RuntimeConfigChanges = {};
  for (const line of lines.map((l) => l.trim()).filter(Boolean)) {
    const match = /^(\w+)\s+([\s\S]*)$/.exec(line);
    if (!match) throw new InvalidInputError(`${line} is not a valid change command`);
    const [, keyword, rest] = match;
    switch (keyword.toUpperCase()) {
      case 'ENV':
        changes.Env = [...(changes.Env ?? []), ...pairs(rest, 'ENV').map(([k, v]) => `${k}=${v}`)];
        break;
      case 'LABEL':
        changes.Labels = { ...(changes.Labels ?? {}), ...Object.fromEntries(pairs(rest, 'LABEL')) };
        break;
      case 'CMD':
        changes.Cmd = command(rest);
        break;
      case 'ENTRYPOINT':
        changes.Entrypoint = command(rest);
        break;
      case 'WORKDIR':
        changes.WorkingDir = rest.trim();
        break;
      case 'USER':
        changes.User = rest.trim();
        break;
      case 'EXPOSE':
        changes.ExposedPorts = { ...(changes.ExposedPorts ?? {}), ...Object.fromEntries(words(rest).map((port) => [port.includes('/') ? port : `${port}/tcp`, {}])) };
        break;
      case 'VOLUME':
        changes.Volumes = { ...(changes.Volumes ?? {}), ...Object.fromEntries((jsonArray(rest) ?? words(rest)).map((path) => [path, {}])) };
        break;
      default:
        throw new InvalidInputError(`${keyword} is not a valid change command (commit takes ENV, LABEL, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE and VOLUME)`);
    }
  }
  return changes;
}

/** `CMD ["a", "b"]` as given; `CMD a b` runs through a shell, as Docker stores it. */
function command(rest: string): string[] {
  return jsonArray(rest) ?? ['/bin/sh', '-c', rest.trim()];
}

function jsonArray(rest: string): string[] | undefined {
  if (!rest.trim().startsWith('[')) return undefined;
  try {
    const parsed: unknown = JSON.parse(rest);
    if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'string')) return parsed;
  } catch {
    // Not JSON: Docker then takes the shell form.
  }
  return undefined;
}

/** Words split on blanks, with double quotes and backslash escapes as the Dockerfile parser has them. */
function words(text: string): string[] {
  const out: string[] = [];
  let word = '';
  let quoted = false;
  let started = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) {
      word += text[++i];
      started = true;
    } else if (c === '"') {
      quoted = !quoted;
      started = true;
    } else if (/\s/.test(c) && !quoted) {
      if (started) out.push(word);
      word = '';
      started = false;
    } else {
      word += c;
      started = true;
    }
  }
  if (quoted) throw new InvalidInputError(`unterminated quote in ${JSON.stringify(text)}`);
  if (started) out.push(word);
  return out;
}

/** `K=V K2="a b"`, or the old form `K the rest is the value`. */
function pairs(rest: string, keyword: string): [string, string][] {
  const items = words(rest);
  if (items.length === 0) throw new InvalidInputError(`${keyword} needs at least one argument`);
  if (!items[0].includes('=')) {
    if (items.length < 2) throw new InvalidInputError(`${keyword} needs a value: ${keyword} name value, or ${keyword} name=value`);
    return [[items[0], items.slice(1).join(' ')]];
  }
  return items.map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InvalidInputError(`${keyword} names must be name=value, not ${JSON.stringify(item)}`);
    return [item.slice(0, eq), item.slice(eq + 1)];
  });
}
